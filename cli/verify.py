"""``uda verify``: re-check a dataset against its manifest."""

from __future__ import annotations

import json

import click


@click.command()
@click.argument("path", type=click.Path())
@click.option("--quick", is_flag=True, help="Check file checksums and row counts only, not content checksums.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def verify(path: str, quick: bool, as_json: bool) -> None:
    """Exit 0 only when every file of the dataset at PATH matches its manifest.json."""
    from uda.errors import UserError
    from uda.store import verify as run_verify

    problems = run_verify(path, content=not quick)
    if as_json:
        click.echo(json.dumps({"path": path, "ok": not problems, "problems": problems}))
    elif not problems:
        click.echo(f"{path}: OK, every file matches manifest.json")
    if problems:
        if not as_json:
            for p in problems[1:]:
                click.echo(f"  {p}", err=True)
        msg = f"{path} does not match its manifest: {problems[0]}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "") + "; regenerate the dataset"
        raise UserError(msg)
