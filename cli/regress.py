"""``uda regress``: fail when a core kernel of HEAD executes more instructions than BASE's (callgrind)."""

from __future__ import annotations

import json
import sys

import click


@click.command()
@click.argument("base", required=False)
@click.argument("head", default="HEAD")
@click.option("--threshold", type=float, default=0.1, show_default=True,
              help="Fail when a kernel executes more than this fraction more instructions than in BASE.")
@click.option("--kernels", default="", metavar="NAMES",
              help="Comma-separated kernels to measure [default: all; see --list].")
@click.option("--repo", default=".", show_default=True, type=click.Path(file_okay=False),
              help="A folder inside the git checkout holding both revisions.")
@click.option("--cache-dir", type=click.Path(file_okay=False),
              help="Extracted revisions, Numba caches, helper library [default: ~/.cache/uda/regress].")
@click.option("--list", "list_only", is_flag=True, help="List the kernels measured and exit.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def regress(base: str | None, head: str, threshold: float, kernels: str, repo: str, cache_dir: str | None,
            list_only: bool, as_json: bool) -> None:
    """Compare the instruction counts of every core kernel at BASE and HEAD.

    Each revision is extracted (git archive; the working tree and index are untouched),
    its Numba kernels are compiled natively, then each kernel runs once under valgrind's
    callgrind with hash seed and thread count fixed. Exit status 1 when a kernel executes
    more than 1 + THRESHOLD times BASE's instructions or breaks; 0 otherwise.
    """
    from uda.harness.regress import probe_cases
    from uda.harness.regress import regress as run_regress

    if list_only:
        click.echo("\n".join(probe_cases()))
        return
    if base is None:
        from uda.errors import UserError

        msg = "give the BASE revision to compare against, e.g. uda regress main HEAD"
        raise UserError(msg)
    names = [k.strip() for k in kernels.split(",") if k.strip()] or None
    progress = None
    if not as_json and sys.stderr.isatty():
        def progress(msg: str) -> None:
            click.echo(msg, err=True)
    res = run_regress(base, head, repo=repo, threshold=threshold, kernels=names, cache_dir=cache_dir,
                      progress=progress)
    if as_json:
        click.echo(json.dumps(res.to_dict()))
    else:
        from rich.markup import escape
        from rich.table import Table

        from uda.cli.output import wide_console

        tab = Table(title=f"instructions per kernel call, {res.base[:12]} → {res.head[:12]}, "
                          f"threshold +{threshold:.0%}")
        for col in ("kernel", "BASE", "HEAD", "change", "verdict"):
            tab.add_column(col, justify="left" if col in ("kernel", "verdict") else "right")
        for k in res.kernels:
            change = f"{k.ratio - 1:+.3%}" if k.ratio is not None else "–"
            counts = [f"{v:,}" if v is not None else "–" for v in (k.base, k.head)]
            style = {"slower": "bold red", "broken": "bold red", "faster": "green"}.get(k.status, "")
            verdict = escape(k.status + (f": {k.detail}" if k.detail else ""))
            tab.add_row(escape(k.kernel), *counts, change, f"[{style}]{verdict}[/]" if style else verdict)
        console = wide_console()
        console.print(tab)
        bad = [k.kernel for k in res.kernels if k.status in ("slower", "broken")]
        console.print(f"REGRESSION in {', '.join(bad)}" if bad else "no regression", markup=False)
        if res.not_measured_at_base:
            console.print(f"not measured at BASE (not compared): {', '.join(res.not_measured_at_base)}", markup=False)
        console.print(f"checked in {res.seconds:.0f} s", markup=False)
    if res.failed:
        click.get_current_context().exit(1)
