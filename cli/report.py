"""``uda report``: the report of a results file, or two runs side by side."""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any

import click

FORMATS = ("table", "markdown", "csv")


def print_tables(tables: list[tuple[str, list[str], list[list[str]], list[str]]], fmt: str) -> None:
    """Print text tables as rich tables (full width when piped) or as Markdown."""
    if fmt == "markdown":
        from uda.harness.report.tables import markdown_table

        click.echo("\n".join(line for t in tables for line in markdown_table(t)).rstrip())
        return
    from rich.markup import escape
    from rich.table import Table

    from uda.cli.output import wide_console

    console = wide_console()
    for title, cols, rows, notes in tables:
        tab = Table(title=escape(title), title_justify="left", caption=escape("\n".join(notes)) or None,
                    caption_justify="left")
        for col in cols:
            tab.add_column(escape(col), overflow="fold")
        for r in rows:
            tab.add_row(*(escape(x) for x in r))
        console.print(tab)


def _stem(path: str) -> str:
    return PurePosixPath(path.rstrip("/")).stem or "report"


def _folder(path: str) -> str:
    return path.rstrip("/").rpartition("/")[0] or "."


@click.command()
@click.argument("results_files", metavar="RESULTS.json [B.json]", nargs=-1, required=True)
@click.option("--html", "as_html", is_flag=True, help="Also write a self-contained HTML page.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder (or fsspec URL) for the report [default: next to the (first) results file].")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
              help="How the tables are printed: rich tables (never cut when piped), Markdown, or CSV "
                   "(one row per case; paths then go to stderr).")
@click.option("--confidence", type=float, default=0.95, show_default=True,
              help="With two runs: confidence level of the interval of each ratio (as uda compare).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (headline, relative tables or the "
              "comparison, and the written files) and nothing else.")
def report(results_files: tuple[str, ...], as_html: bool, out: str | None, fmt: str, confidence: float,
           as_json: bool) -> None:
    """Write the report of a run (Markdown, PNG plots, with --html a page) and print its headline.

    RESULTS.json is a results file of `uda bench` (any suite, a sweep too) or the result of
    `uda run flow|route|water|utilisation --out` (the file, or the folder holding it). The
    report starts with the headline: per task and scale the fastest engine and by how much
    (with a confidence interval), the answer quality of the best method against its
    baseline, and whether the engines agreed; then each engine's time and peak memory
    relative to the best engine, and the scaling plots with the sizing fit.

    With two files, A.json B.json, it shows the two runs side by side (two machines or two
    commits): per case B/A with the confidence interval of `uda compare`, and writes
    A-vs-B.md. Paths may be local or fsspec URLs (memory://, s3://, ...).
    """
    from uda.errors import UserError
    from uda.harness.report.documents import write_comparison, write_report
    from uda.harness.report.inputs import load_report_input
    from uda.harness.report.tables import (
        cases_csv,
        compare_csv,
        compare_tables,
        report_json,
        report_tables,
    )
    from uda.store import output_location, shown_path

    if len(results_files) > 2:
        msg = (f"got {len(results_files)} results files; give one (its report) or two (A.json B.json, side by "
               "side)")
        raise UserError(msg)
    if not 0 < confidence < 1:
        msg = f"--confidence {confidence} must be between 0 and 1 (e.g. 0.95)"
        raise UserError(msg)
    loaded = [load_report_input(p) for p in results_files]
    target = out or _folder(results_files[0])
    payload: dict[str, Any]
    with output_location(target, folder=True) as folder:
        if len(loaded) == 1:
            paths = write_report(loaded[0], out_dir=folder, stem=_stem(results_files[0]), html_page=as_html)
            tables, csv_text, payload = report_tables(loaded[0]), cases_csv(loaded[0]), report_json(loaded[0])
        else:
            stem = f"{_stem(results_files[0])}-vs-{_stem(results_files[1])}"
            cmp, paths = write_comparison(loaded[0], loaded[1], out_dir=folder, stem=stem, html_page=as_html,
                                          confidence=confidence)
            tables, csv_text, payload = compare_tables(cmp), compare_csv(cmp), {"comparison": cmp}
        shown = {k: shown_path(target, folder, v) for k, v in paths.items()}
    written = [shown["markdown"]] + ([shown["html"]] if "html" in shown else [])
    if as_json:
        from uda.cli.output import json_safe

        click.echo(json.dumps(json_safe({**payload, "files": shown})))
        return
    if fmt == "csv":
        click.echo(csv_text, nl=False)
        for p in written:
            click.echo(p, err=True)
        return
    print_tables(tables, fmt)
    for p in written:
        click.echo(p)
