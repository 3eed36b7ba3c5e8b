"""``uda bench``: run a benchmark suite, write the results file and its report."""

from __future__ import annotations

import json

import click


def summary_table(results: dict, *, title: str):
    """A rich table of a run's cases (strings from data escaped)."""
    from rich.markup import escape
    from rich.table import Table

    from uda.harness.report.text import SUMMARY_COLUMNS, case_rows

    tab = Table(title=escape(title))
    cols = SUMMARY_COLUMNS
    for col in cols:
        tab.add_column(col.rstrip("1"), justify="left" if col in ("task", "engine", "scale", "status", "quality1") else "right")
    for row in case_rows(results):
        cells = [escape(row[c]) for c in cols]
        cells[3] = f"[green]{cells[3]}[/]" if row["status"] == "ok" else f"[bold red]{cells[3]}[/]"
        tab.add_row(*cells)
    return tab


@click.command()
@click.option("--suite", default="default", show_default=True,
              help="Built-in suite name or a .toml/.json suite file (see docs/harness.md).")
@click.option("--out", type=click.Path(file_okay=False), default="results", show_default=True,
              help="Folder (or fsspec URL such as s3://bucket/results) for the results file "
                   "<run-id>.json and its report.")
@click.option("--engine", "engines", multiple=True,
              help="Run only on this engine (repeatable), replacing the suite's engines.")
@click.option("--scheduler", "schedulers", multiple=True,
              help="Dask scheduler (repeatable): threads, processes, sync, local:N (a LocalCluster "
                   "of N worker processes) or a tcp:// address.")
@click.option("--scale", "scales", multiple=True, help="Replace the suite's scales (repeatable).")
@click.option("--task", "tasks", multiple=True, help="Run only this task (repeatable).")
@click.option("--repeats", type=click.IntRange(min=0), default=None,
              help="Warm repeats per case, replacing the suite's.")
@click.option("--no-report", is_flag=True, help="Do not write the Markdown/HTML report.")
@click.option("--json", "as_json", is_flag=True, help="Print the results object as JSON (nothing else on stdout).")
@click.option("--format", "fmt", type=click.Choice(["table", "markdown", "csv"]), default="table",
              show_default=True, help="How the summary is printed: rich tables (never cut when piped), Markdown, "
                                      "or CSV (one row per case; the paths then go to stderr).")
def bench(suite: str, out: str, engines, schedulers, scales, tasks, repeats, no_report: bool,
          as_json: bool, fmt: str) -> None:
    """Run a suite of task x engine x scale cases, each in its own process with limits.

    Every case reports wall, CPU and peak memory of its process tree, cold (first
    call) and warm repeats, rows/s and answer quality; Polars and Dask answers are
    checked against each other. Results go to OUT/<run-id>.json (never overwritten).
    """
    import sys

    from rich.console import Console

    from uda.cli.progress import progress_bar
    from uda.engines import check_engine
    from uda.harness.report.documents import write_report
    from uda.harness.runner.suite import load_suite
    from uda.harness.runner.supervise import run_suite
    from uda.store import output_location, shown_path

    for e in engines:
        check_engine(e)
    err = Console(stderr=True)
    loaded = load_suite(suite)
    with output_location(out, folder=True) as folder:
        with progress_bar(f"bench {loaded.get('name', '')}") as update:
            results, path = run_suite(loaded, out_dir=folder, engines=list(engines) or None,
                                      schedulers=list(schedulers) or None, scales=list(scales) or None,
                                      tasks=list(tasks) or None, repeats=repeats, progress=update,
                                      log=lambda m: err.print(m, markup=False) if sys.stderr.isatty() else None)
        paths = {} if no_report else write_report(results, out_dir=folder, stem=path.stem)
        path = shown_path(out, folder, path)
        paths = {k: shown_path(out, folder, v) for k, v in paths.items()}
    if as_json:
        click.echo(json.dumps(results))
        return
    files = [f"results: {path}"] + ([f"report:  {paths['markdown']}  {paths.get('html', '')}".rstrip()]
                                    if paths else [])
    if fmt == "csv":
        from uda.harness.report.tables import cases_csv

        click.echo(cases_csv(results), nl=False)
        for line in files:
            click.echo(line, err=True)
        return
    from uda.cli.output import wide_console
    from uda.cli.report import print_tables
    from uda.harness.report.tables import headline_table
    from uda.harness.report.text import SUMMARY_COLUMNS, case_rows

    title = f"uda bench {results['suite'].get('name', '')} ({results['run_id']})"
    if fmt == "markdown":
        rows = [[r[c] for c in SUMMARY_COLUMNS] for r in case_rows(results)]
        print_tables([(title, [c.rstrip("1") for c in SUMMARY_COLUMNS], rows, []), headline_table(results)], fmt)
    else:
        wide_console().print(summary_table(results, title=title))
        print_tables([headline_table(results)], fmt)
    for line in files:
        click.echo(line)
