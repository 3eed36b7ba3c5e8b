"""``uda report``: Markdown (and HTML) report with plots of a results file."""

from __future__ import annotations

from pathlib import PurePosixPath

import click


@click.command()
@click.argument("results_file", metavar="RESULTS.json")
@click.option("--html", "as_html", is_flag=True, help="Also write a self-contained HTML page.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder (or fsspec URL) for the report [default: next to RESULTS.json].")
def report(results_file: str, as_html: bool, out: str | None) -> None:
    """Write RESULTS.md (tables and PNG plots) next to RESULTS.json, and print its path.

    RESULTS.json and --out may be local paths or fsspec URLs (memory://, s3://, ...).
    """
    from uda.harness.report import write_report
    from uda.harness.results import load_results
    from uda.store import output_location, shown_path

    results = load_results(results_file)
    target = out or results_file.rstrip("/").rpartition("/")[0] or "."
    with output_location(target, folder=True) as folder:
        paths = write_report(results, out_dir=folder, stem=PurePosixPath(results_file).stem,
                             html_page=as_html)
    click.echo(shown_path(target, folder, paths["markdown"]))
    if "html" in paths:
        click.echo(shown_path(target, folder, paths["html"]))
