"""``uda realism``: the statistics that decide which forecaster wins, beside a real reference."""

from __future__ import annotations

import json

import click

from uda.cli.output import json_safe, missing_codes

SOURCES = "--data DIR, --wide FILE, --libcity DIR or --long FILE"


def _panel(data_dir, target, wide_file, libcity_path, long_files, interval, start, time_col,
           id_col, value_col, column, missing, irregular):
    """Read the subject table as a Panel and a default name."""
    from pathlib import Path

    import numpy as np

    from uda.errors import UserError

    if data_dir is not None:
        from uda.forecasting.neighbours import csr_from_pairs
        from uda.forecasting.panel import Panel
        from uda.store import open_dataset
        from uda.tasks.flow import (
            TARGETS,
            sensor_pairs,
            station_pairs,
            station_panel_polars,
            traffic_panel_polars,
        )

        ds = open_dataset(data_dir)
        if target == "stations":
            ids, Y, t0 = station_panel_polars(ds)
            src, dst = station_pairs(ds)
        else:
            ids, Y, t0 = traffic_panel_polars(ds, column="flow" if target == "traffic" else "speed")
            src, dst = sensor_pairs(ds)
        step = TARGETS[target][2]
        indptr, indices = csr_from_pairs(src, dst, ids)
        start0 = np.datetime64(int(t0), "ms").astype("datetime64[s]")
        return (Panel(Y, [str(i) for i in ids], start0, step, indptr, indices),
                f"{Path(data_dir).name} {target}")
    if wide_file is not None:
        from uda.io.wide import find_time_column, read_table, read_wide

        if interval is None:
            msg = "--wide needs --interval (the step length, e.g. 5min)"
            raise UserError(msg)
        if start is None and find_time_column(read_table(wide_file), time_col, where=str(wide_file)) is None:
            msg = (f"{wide_file} has no time axis (no timestamp column); pass --start (time of the first row) "
                   "so that time of day and weekends are known, or --time-col")
            raise UserError(msg)
        panel = read_wide(wide_file, interval=interval, start=start, time_column=time_col,
                          missing=missing, irregular=irregular)
        return panel, Path(wide_file).stem
    if libcity_path is not None:
        from uda.io.libcity import read_libcity

        return (read_libcity(libcity_path, column=column, interval=interval, missing=missing),
                Path(libcity_path).stem)
    from uda.io.long import read_long, stack_panels

    panels = [read_long(f, interval=interval, time_column=time_col, id_column=id_col,
                        value_column=value_col, missing=missing, irregular=irregular)
              for f in long_files]
    name = Path(long_files[0]).stem + (f" +{len(long_files) - 1}" if len(long_files) > 1 else "")
    return stack_panels(panels), name


def _fmt(x, digits=2) -> str:
    if x is None:
        return "n/a"
    return f"{x:.{digits}f}" if abs(x) < 100 else f"{x:,.0f}"


def _cell(s: dict | None, wide: bool = True) -> str:
    if not s or s.get("median") is None:
        return "n/a"
    if wide and s["n"] > 1:
        return f"{_fmt(s['median'])} [{_fmt(s['q25'])}–{_fmt(s['q75'])}]"
    return _fmt(s["median"])


def _describe(sig: dict) -> str:
    return (f"{sig.get('name') or '?'}: {sig['series_used']} of {sig['series']} series, "
            f"{sig['interval_s'] / 60:g}-min steps, {sig['days']:g} days; neighbours: {sig['neighbours']}")


def _table(subject: dict, reference: dict | None, rows: list[dict] | None, *, wide: bool):
    """Statistics beside the reference; ``wide`` adds the interquartile ranges."""
    from rich import box
    from rich.table import Table

    from uda.realism.stats import STATS

    tab = Table(title="median" + (" [IQR]" if wide else "") + " over series", title_justify="left",
                box=box.SIMPLE_HEAD, pad_edge=False)
    tab.add_column("statistic", no_wrap=True)
    tab.add_column("subject", justify="right", no_wrap=True)
    if reference is not None:
        tab.add_column("reference", justify="right", no_wrap=True)
        tab.add_column("band", justify="right", no_wrap=True)
        tab.add_column("verdict", no_wrap=True)
    by_key = {r["key"]: r for r in rows or []}
    style = {"ok": "green", "low": "red", "high": "red", "n/a": "dim"}
    for k, st in enumerate(STATS):
        if k == 0 or STATS[k - 1].group != st.group:
            tab.add_row(f"[bold]{st.group}[/]")
        cells = [f"  {st.short}", _cell(subject["stats"].get(st.key), wide)]
        if reference is not None:
            r = by_key[st.key]
            b = r["band"]
            cells += [_cell(reference["stats"].get(st.key), wide),
                      "n/a" if b is None else f"{_fmt(b[0])}–{_fmt(b[1])}",
                      f"[{style[r['verdict']]}]{r['verdict']}[/]"]
        tab.add_row(*cells)
    return tab


@click.command()
@click.option("--data", "data_dir", type=click.Path(), default=None,
              help="Generated dataset folder.")
@click.option("--target", type=click.Choice(["traffic", "speed", "stations"]), default="traffic",
              show_default=True,
              help="With --data: sensor flow at 5 min, sensor speed at 5 min, or station in/outflow at 15 min.")
@click.option("--wide", "wide_file", type=click.Path(), default=None,
              help="Wide CSV/Parquet table: one column per sensor, one row per time step.")
@click.option("--libcity", "libcity_path", type=click.Path(), default=None,
              help="LibCity dataset folder (or file); .rel relations are the neighbours.")
@click.option("--long", "long_files", type=click.Path(), multiple=True,
              help="Long CSV/Parquet table: a time column, an optional id column, a value column. "
                   "Repeat to stack several files (e.g. NAB series) on one grid.")
@click.option("--interval", default=None,
              help="Step length, e.g. 5min: required with --wide; default inferred for --libcity/--long.")
@click.option("--start", default=None,
              help="With --wide and no timestamp column: time of the first row (required then).")
@click.option("--time-col", "--time-column", "time_col", default=None,
              help="Timestamp column [default: a date/time column or one named timestamp/time/datetime/date/ts].")
@click.option("--id-col", default=None, help="With --long: column naming the series [default: one series].")
@click.option("--value-col", default=None,
              help="With --long: value column [default: the only numeric one].")
@click.option("--column", default=None, help="With --libcity: .dyna value column.")
@click.option("--missing", "missing_text", default=None,
              help="With --wide/--long/--libcity: values read as missing, comma-separated (e.g. -1), or 'none'. "
                   "Default: detected as for uda run flow, each noted.")
@click.option("--irregular", is_flag=True,
              help="With --wide/--long: bin timestamps to the --interval grid (mean per step) "
                   "instead of requiring them on it.")
@click.option("--resample", default=None,
              help="Average the subject to this coarser step first (e.g. 15min to match a 15-min reference).")
@click.option("--neighbours", type=int, default=4, show_default=True,
              help="Without an adjacency: neighbours per series, the most correlated ones (0: none).")
@click.option("--ref", default=None,
              help="Reference to compare with: a committed signature name (see docs/realism.md: "
                   "scats, pedestrian, nab_speed, nab_occupancy, nab_traveltime, neon_*) or a JSON file "
                   "written by uda realism --json/--out.")
@click.option("--name", default=None, help="Label of the subject in the report.")
@click.option("--per-series", is_flag=True, help="With --json/--out: include every series' statistics.")
@click.option("--plot", "plot_file", type=click.Path(), default=None,
              help="Write a PNG: statistics with bands, daily profiles and ACF curves.")
@click.option("--out", type=click.Path(), default=None, help="Also write the JSON report to this file.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def realism(data_dir, target, wide_file, libcity_path, long_files, interval, start, time_col, id_col,
            value_col, column, missing_text, irregular, resample, neighbours, ref, name, per_series, plot_file,
            out, as_json) -> None:
    """Statistics of a sensor table that decide which forecaster wins, beside a reference.

    Per series, then median and interquartile range over series: variance explained by
    time of day (and weekday/weekend), autocorrelation of deviations from that profile
    (lag 1 step, 1 h, 1 day), MAE of the last value over the time-of-day average at 15/30/60
    min (chronological 80/20), correlation with neighbours, missing share and run
    lengths, value quantiles over the mean, weekend contrast. With --ref each statistic
    gets a verdict against a band around the reference (docs/realism.md).
    """
    from uda.errors import UserError
    from uda.forecasting.panel import parse_interval
    from uda.realism.plot import plot
    from uda.realism.reference import compare, load_reference
    from uda.realism.signature import coarsen, signature

    given = [s for s in (data_dir, wide_file, libcity_path, long_files or None) if s is not None]
    if len(given) != 1:
        msg = f"give exactly one input: {SOURCES}"
        raise UserError(msg)
    if neighbours < 0:
        msg = f"--neighbours must be 0 or more; got {neighbours}"
        raise UserError(msg)
    if plot_file is not None and not str(plot_file).lower().endswith(".png"):
        msg = f"--plot writes a PNG; give a file name ending in .png (got {plot_file})"
        raise UserError(msg)
    reference = load_reference(ref) if ref is not None else None
    panel, default_name = _panel(data_dir, target, wide_file, libcity_path, long_files, interval, start,
                                 time_col, id_col, value_col, column, missing_codes(missing_text), irregular)
    if resample is not None:
        panel = coarsen(panel, parse_interval(resample))
    subject = signature(panel, name=name or default_name, neighbours=neighbours, per_series=per_series)
    rows = compare(subject, reference) if reference is not None else None
    res = {"subject": subject, "reference": reference, "comparison": rows}
    if rows is not None:
        res["verdicts"] = {v: sum(r["verdict"] == v for r in rows) for v in ("ok", "low", "high", "n/a")}
    res = json_safe(res)
    if out is not None:
        from pathlib import Path

        from uda.store import atomic_write_text

        atomic_write_text(Path(out), json.dumps(res, indent=1))
    if plot_file is not None:
        plot(plot_file, subject, reference, rows)
    if as_json:
        click.echo(json.dumps(res))
        return
    from rich.markup import escape

    from uda.cli.output import wide_console

    console = wide_console()
    console.print(_table(subject, reference, rows, wide=console.width >= 110))
    console.print(f"subject:   {escape(_describe(subject))}")
    if reference is not None:
        console.print(f"reference: {escape(_describe(reference))}")
        v = res["verdicts"]
        console.print(f"{v['ok']} of {len(rows) - v['n/a']} statistics within the band "
                      f"({v['low']} low, {v['high']} high, {v['n/a']} n/a)")
    for note in subject["notes"]:
        console.print(f"note: {escape(note)}")
    for target_file, what in ((plot_file, "plot"), (out, "report")):
        if target_file is not None:
            console.print(f"{what} written to {escape(str(target_file))}")
