"""``uda verify``: re-check a dataset against its manifest."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command()
@click.argument("path", type=click.Path())
@click.option("--quick", is_flag=True, help="Check file checksums and row counts only, not content checksums.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def verify(path: str, quick: bool, as_json: bool) -> None:
    """Exit 0 only when every file of the dataset at PATH matches its manifest.json.

    The standardised tables in PATH/clean/ (written by `uda run standardise`) are checked
    against clean/manifest.json too. Without --quick every table is re-read with its
    Parquet page checksums verified and its content checksum recomputed.
    """
    from uda.errors import UserError
    from uda.store import CLEAN_DIR, MANIFEST, split_location
    from uda.store import verify as run_verify

    problems = run_verify(path, content=not quick)
    fs, root = split_location(path)
    has_clean = fs is None and (Path(root) / CLEAN_DIR / MANIFEST).is_file()
    if as_json:
        click.echo(json.dumps({"path": path, "ok": not problems, "problems": problems, "clean": has_clean}))
    elif not problems:
        also = f", and {CLEAN_DIR}/ matches {CLEAN_DIR}/{MANIFEST}" if has_clean else ""
        click.echo(f"{path}: OK, every file matches {MANIFEST}{also}")
    if problems:
        if not as_json:
            for p in problems[1:]:
                click.echo(f"  {p}", err=True)
        fix = ("rerun `uda run standardise` on it (or regenerate the dataset)"
               if all(p.startswith(f"{CLEAN_DIR}/") for p in problems) else "regenerate the dataset")
        msg = (f"{path} does not match its manifest: {problems[0]}"
               + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "") + f"; {fix}")
        raise UserError(msg)
