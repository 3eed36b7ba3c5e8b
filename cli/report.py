"""``uda report``: Markdown (and HTML) report with plots of a results file."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("results_file", metavar="RESULTS.json")
@click.option("--html", "as_html", is_flag=True, help="Also write a self-contained HTML page.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder for the report [default: next to RESULTS.json].")
def report(results_file: str, as_html: bool, out: str | None) -> None:
    """Write RESULTS.md (tables and PNG plots) next to RESULTS.json, and print its path."""
    from uda.harness.report import write_report
    from uda.harness.results import load_results

    results = load_results(results_file)
    src = Path(results_file)
    paths = write_report(results, out_dir=Path(out) if out else src.parent, stem=src.stem,
                         html_page=as_html)
    click.echo(str(paths["markdown"]))
    if "html" in paths:
        click.echo(str(paths["html"]))
