"""``uda run water``: water-quality indices, exceedances, event detectors and mass balance."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

from uda.cli.run import engine_option
from uda.errors import UserError


def _fmt(v, spec: str = ".3f") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return format(v, spec)


def _print_human(summary: dict) -> None:
    from rich.markup import escape
    from rich.table import Table

    from uda.cli.output import wide_console

    console = wide_console()
    for w in summary.get("warnings", []):
        console.print(f"[yellow]warning:[/yellow] {escape(w)}")
    best = summary.get("best_detector") or "multivariate"
    tab = Table(title="water quality per site (CCME WQI over the whole record)",
                caption=f"alarms: {escape(best)} detector; mass bal.: unexplained-gain alarms")
    for col in ("site", "samples", "CCME WQI", "category", "WA WQI", "exceed.",
                "alarms", "mass bal."):
        tab.add_column(col, justify="left" if col == "category" else "right")
    for s in summary["sites"]:
        tab.add_row(str(s["site_id"]), f"{s['samples']:,}", _fmt(s["ccme_wqi"], ".1f"),
                    escape(s["category"]), _fmt(s["wa_wqi"], ".1f"), f"{s['exceedances']:,}",
                    f"{s['alarms']:,}",
                    f"{s['mass_balance_alarms']:,}" if s["upstream_sites"] else "-")
    console.print(tab)
    if summary.get("protocol"):
        _print_protocol(console, summary)
    elif summary.get("detectors"):
        det = Table(title="event detection (event level)")
        for col in ("detector", "precision", "recall", "F1", "median delay (s)", "events",
                    "alarms", "false alarms"):
            det.add_column(col, justify="left" if col == "detector" else "right")
        for name, sc in summary["detectors"].items():
            det.add_row(name, _fmt(sc["precision"]), _fmt(sc["recall"]), _fmt(sc["f1"]),
                        _fmt(sc["median_delay_s"], ".0f"), str(sc["n_events"]), str(sc["n_alarms"]),
                        str(sc["n_false_alarms"]))
        console.print(det)
    if summary.get("protocol_detectors"):
        gen = summary["protocol_detectors"]
        _print_protocol(console, {"protocol": gen["protocol"], "detectors": gen["detectors"],
                                  "baseline": gen["baseline"]})
    mb = summary.get("mass_balance")
    if mb:
        console.print(f"mass balance: {mb['n_detected']} of {mb['n_events']} discharges between adjacent "
                      f"sites found; {mb['n_false_alarms']} false alarms of {mb['n_alarms']} "
                      f"({_fmt(mb['false_alarms_per_site_day'], '.3f')} per site-day) over "
                      f"{mb['sites_checked']} sites with upstream neighbours")
    for kind, path in summary.get("files", {}).items():
        console.print(f"wrote {kind}: {escape(str(path))}")


def _print_protocol(console, summary: dict) -> None:
    """Column mapping, index basis, protocol and the per-sample / per-event scores of a table run."""
    from rich.markup import escape
    from rich.table import Table

    cols = summary.get("columns", {})
    if cols:
        console.print("parameters: " + escape(", ".join(f"{c} -> {p}" if c != p else c for c, p in cols.items())))
    for kind in ("ccme", "weighted_arithmetic"):
        if "indices" in summary:
            console.print(escape(summary["indices"][kind]["note"]))
    pr = summary["protocol"]
    how = (f"first {pr['train_fraction']:g} of each site's rows" if pr["kind"] == "train_fraction"
           else f"training table {pr['train_table']}")
    console.print(escape(f"protocol (detectors over every parameter): fitted on {how} ({pr['train_rows']:,} rows"
                         + (f", {pr['train_events']} labelled events" if "train_events" in pr else "")
                         + f"); scored from {pr['test_start']} ({pr['test_rows']:,} rows)"))
    labelled = any("per_sample" in e for e in summary["detectors"].values())
    tab = Table(title="event detection on the test part" + ("" if labelled else " (no labels: alarms only)"))
    heads = ["detector", "thresh."]
    if labelled:
        heads += ["P", "R", "F1", "found", "delay s", "FA/day"]
    heads += ["alarms", "/day"]
    for h in heads:
        tab.add_column(h, justify="left" if h == "detector" else "right", no_wrap=h == "detector")
    if labelled:
        tab.caption = ("P, R, F1 over rows; found = events with an alarm; delay = median; "
                       "FA = false alarms")
    for name, e in summary["detectors"].items():
        row = [name, _fmt(e["threshold"], ".4g")]
        if labelled:
            ps, pe = e["per_sample"], e["per_event"]
            row += [_fmt(ps["precision"]), _fmt(ps["recall"]), _fmt(ps["f1"]),
                    f"{pe['n_detected']}/{pe['n_events']}", _fmt(pe["median_delay_s"], ".0f"),
                    _fmt(pe["false_alarms_per_day"], ".2f")]
        row += [str(e["alarms"]), _fmt(e["alarms_per_day"], ".2f")]
        tab.add_row(*row)
    if labelled and summary.get("baseline"):
        b = summary["baseline"]["flag_everything"]
        tab.add_row("flag everything", "-", _fmt(b["precision"]), _fmt(b["recall"]), _fmt(b["f1"]),
                    "-", "-", "-", "-", "-")
    console.print(tab)


@click.command()
@click.option("--data", "data_dir", type=click.Path(), default=None,
              help="Generated dataset folder (water table, river network and truth).")
@click.option("--table", "table_file", type=click.Path(), default=None,
              help="External CSV/Parquet table: a time column and one column per parameter.")
@click.option("--time-col", default=None,
              help="With --table: the time column [default: the one datetime column].")
@click.option("--label-col", default=None,
              help="With --table: boolean (or 0/1) column marking event samples [default: the one "
                   "boolean or 0/1 column, if any]; labels of the training part fit the detectors, "
                   "the test part is scored against them.")
@click.option("--site-col", default=None,
              help="With --table: site column [default: a column named like site/siteID/station, else one site].")
@click.option("--columns", "columns", default=None,
              help="With --table: COLUMN=parameter pairs, e.g. 'Tp=temperature_c,Leit=conductivity_uscm' "
                   "(default: built-in alias table; other numeric columns stay parameters under their own names).")
@click.option("--train-fraction", type=float, default=None,
              help="Fit the detectors over every parameter and their thresholds on the first "
                   "fraction of each site's rows, score the rest [default with --table: 0.5; with "
                   "--data: only the signature detectors run unless given].")
@click.option("--train-table", type=click.Path(), default=None,
              help="With --table: fit on this labelled table (same columns) and score all of --table.")
@engine_option("Engine running the per-site pipeline.")
@click.option("--period", type=click.Choice(["all", "day", "week", "month"]), default="month",
              show_default=True, help="WQI period per site.")
@click.option("--guidelines", type=click.Path(), default=None,
              help='JSON overriding guideline limits, e.g. {"ph": {"lower": 6.0}} (see docs/water.md).')
@click.option("--min-event-size", type=float, default=None,
              help="With --data: smallest plume (magnitude x peak factor) that counts [default: 0.2].")
@click.option("--plot-site", type=int, default=None,
              help="Site to plot [default: the site with the most events, or the first].")
@click.option("--plot/--no-plot", default=True, show_default=True,
              help="Write a PNG of one site's parameters with true events and alarms.")
@click.option("--out", type=click.Path(), default=None,
              help="Results folder or fsspec URL [default: results/water/<dataset or table name>].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the results.")
def water(data_dir, table_file, time_col, label_col, site_col, columns, train_fraction, train_table,
          engine, scheduler, period, guidelines, min_event_size, plot_site, plot, out, as_json):
    """Water quality: CCME and weighted-arithmetic WQI, exceedance episodes, streaming
    detectors scored at event level, and upstream-downstream mass balance.

    Run it on a generated dataset (--data) or on your own table (--table): every numeric
    column is a parameter, detectors are fitted on a training part and scored per sample
    and per event on the rest.
    """
    from uda.store import output_location, shown_path
    from uda.tasks.water import run, run_table

    if (data_dir is None) == (table_file is None):
        msg = "pass exactly one of --data DIR (a generated dataset) or --table FILE (your own table)"
        raise UserError(msg)
    options = {"period": period}
    if min_event_size is not None:
        if not (min_event_size >= 0 and math.isfinite(min_event_size)):
            msg = f"--min-event-size must be a finite number >= 0; got {min_event_size}"
            raise UserError(msg)
        options["min_event_size"] = min_event_size
    if data_dir is not None:
        for name, val in (("--time-col", time_col), ("--label-col", label_col), ("--site-col", site_col),
                          ("--columns", columns), ("--train-table", train_table)):
            if val is not None:
                msg = f"{name} only applies with --table; drop it or use --table FILE"
                raise UserError(msg)
        out = out or str(Path("results") / "water" / Path(data_dir).resolve().name)
        with output_location(out, folder=True) as folder:
            result = run(data_dir, engine=engine, scheduler=scheduler, guidelines=guidelines,
                         out=folder, plot_site=plot_site, plot=plot, train_fraction=train_fraction,
                         **options)
    else:
        out = out or str(Path("results") / "water" / Path(table_file).stem)
        with output_location(out, folder=True) as folder:
            result = run_table(table_file, time_col=time_col, label_col=label_col, site_col=site_col,
                               columns=columns, train_fraction=train_fraction, train_table=train_table,
                               engine=engine, scheduler=scheduler, guidelines=guidelines, out=folder,
                               plot_site=plot_site, plot=plot, **options)
    summary = result.summary
    summary["files"] = {k: shown_path(out, folder, p) for k, p in summary.get("files", {}).items()}
    if as_json:
        payload = {"task": "water", "engine": result.engine, **summary,
                   "quality": result.quality, "rows_in": result.rows_in}
        click.echo(json.dumps(payload, default=str))
    else:
        _print_human(summary)
