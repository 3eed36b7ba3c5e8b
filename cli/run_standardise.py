"""``uda run standardise``: map department feeds into the canonical schema, flag and repair."""

from __future__ import annotations

import json

import click

from uda.cli.run import engine_option


@click.command()
@click.option("--data", "data", required=True, type=click.Path(), help="Dataset folder written by `uda generate`.")
@engine_option("Engine that reads and parses the feeds.")
@click.option("--repair", is_flag=True,
              help="Shift skewed sensor clocks back onto the grid and divide drifted values by the estimated drift.")
@click.option("--no-write", is_flag=True, help="Standardise in memory and report; do not write DATA/clean/.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the report.")
def standardise(data: str, engine: str, scheduler: str | None, repair: bool, no_write: bool, as_json: bool) -> None:
    """Standardise the feeds of a dataset into DATA/clean/.

    Every district's feed is parsed under its own standard (units, timestamp format and
    time zone, id scheme, renamed columns), de-duplicated and flagged; clean rows go to
    clean/<table>, the rest with their flags to clean/<table>_rejects. Feed problems
    (unknown unit, missing column, unparseable timestamps) are reported as findings.
    """
    from uda.quality.rules import FLAGS
    from uda.tasks.standardise import run

    res = run(data, engine=engine, scheduler=scheduler, repair=repair, write=not no_write)
    rep = res.summary
    if as_json:
        click.echo(json.dumps(rep))
        return
    from rich.markup import escape
    from rich.table import Table

    from uda.cli.output import wide_console

    console = wide_console()
    tab = Table(title=escape(f"standardise {data} ({engine}, {rep['seconds']:.2f} s)"))
    for col in ("table", "district", "collected", "valid", "standardised", "integrated"):
        tab.add_column(col, justify="left" if col == "table" else "right")
    for table, per in rep["counts"].items():
        for d, c in per.items():
            tab.add_row(table, d, *(f"{c[k]:,}" for k in ("collected", "valid", "standardised", "integrated")))
    console.print(tab)
    ftab = Table(title="rows flagged")
    ftab.add_column("table")
    for name in FLAGS:
        ftab.add_column(name.removeprefix("flag_"), justify="right")
    for table, fl in rep["flags"].items():
        ftab.add_row(table, *(f"{fl[name]:,}" for name in FLAGS))
    console.print(ftab)
    for f in rep["findings"]:
        console.print(f"finding: {escape(f['file'])}: {escape(f['message'])}")
    if not rep["has_feeds"]:
        console.print("the dataset has no feeds (generated with --defects none): its raw tables are canonical")
