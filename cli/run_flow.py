"""``uda run flow``: score forecasters on a dataset, a wide or long table, or LibCity files."""

from __future__ import annotations

import json

import click

from uda.cli.output import json_safe, missing_codes
from uda.cli.run import engine_option


def _split(text: str) -> tuple[float, float, float]:
    from uda.errors import UserError

    try:
        parts = [float(x) for x in text.split(",")]
    except ValueError:
        parts = []
    if len(parts) != 3 or sum(parts) <= 0:
        msg = f"cannot read --split {text!r}; give three percentages like 70,10,20"
        raise UserError(msg)
    total = sum(parts)
    return (parts[0] / total, parts[1] / total, parts[2] / total)


def _table(res: dict):
    from rich.markup import escape
    from rich.table import Table

    minutes = res["interval_s"] / 60
    tab = Table(title=escape(f"flow forecasts: {res['series']} series, {res['protocol']['origins']} "
                             "rolling origins in the test period"))
    tab.add_column("model")
    tab.add_column("horizon", justify="right")
    for col in ("MAE", "RMSE", "MAPE %", "skill vs ha", "points"):
        tab.add_column(col, justify="right")
    skill = res.get("skill_mae_vs_ha", {})
    for name, per_h in res["models"].items():
        for k, (h, m) in enumerate(per_h.items()):
            sk = skill.get(name, {}).get(h)
            tab.add_row(escape(name) if k == 0 else "", f"{h} ({int(h) * minutes:g} min)",
                        _num(m["mae"]), _num(m["rmse"]), _num(m["mape"], 1),
                        "-" if sk is None else f"{sk:+.1%}", f"{m['n']:,}",
                        end_section=k == len(per_h) - 1)
    return tab


def _num(x, digits: int = 2) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


@click.command()
@click.option("--data", "data_dir", type=click.Path(), default=None,
              help="Generated dataset folder (targets built with --engine).")
@click.option("--wide", "wide_file", type=click.Path(), default=None,
              help="Wide CSV/Parquet table: one column per sensor, one row per time step.")
@click.option("--libcity", "libcity_path", type=click.Path(), default=None,
              help="LibCity dataset folder (or file) with .geo, .dyna and optionally .rel files.")
@click.option("--long", "long_files", type=click.Path(), multiple=True,
              help="Long CSV/Parquet table: a time column, an optional id column, a value column. "
                   "Repeat to stack several files (e.g. NAB series) on one grid.")
@click.option("--interval", default=None,
              help="Step length of --wide (required), --libcity or --long (default: inferred), e.g. 5min.")
@click.option("--start", default=None,
              help="With --wide and no timestamp column: time of the first row [default: 2024-01-01T00:00, a Monday].")
@click.option("--time-column", "--time-col", "time_column", default=None,
              help="With --wide/--long: name of the timestamp column [default: auto-detect timestamp/time/date/ts].")
@click.option("--id-col", default=None, help="With --long: column naming the series [default: one series].")
@click.option("--value-col", default=None, help="With --long: value column [default: the only numeric one].")
@click.option("--missing", "missing_text", default=None,
              help="With --wide, --long or --libcity: comma-separated values that mean missing, e.g. -1, or 'none'. "
                   "Default: detected (negative codes such as -1 in a non-negative table, 9999-style "
                   "codes, zeros that break in from typical values), each noted in the result.")
@click.option("--irregular", is_flag=True,
              help="With --wide/--long: bin off-grid or repeated timestamps to the --interval grid (mean per step).")
@click.option("--adjacency", type=click.Path(), default=None,
              help="With --wide: square 0/1 or weight matrix CSV without header, one row and column per "
                   "sensor in the table's column order; neighbours of the spatial models.")
@click.option("--column", default=None,
              help="With --libcity: .dyna value column [default: traffic_flow, else the first numeric one].")
@click.option("--target", type=click.Choice(["traffic", "speed", "stations"]), default="traffic",
              show_default=True,
              help="With --data: sensor flow at 5 min, sensor speed at 5 min, or station in/outflow at 15 min.")
@engine_option("Polars (blocks of sensors read and fitted in turn) or Dask (a task per block).")
@click.option("--models", default="last,snaive_day,snaive_week,ha,ha_slot,hw,ridge,ridge_sp,ridge_st",
              show_default=True,
              help="Comma-separated forecasters, or 'all'.")
@click.option("--horizons", default="1,3,6,12", show_default=True, help="Steps ahead to score.")
@click.option("--split", "split_text", default="70,10,20", show_default=True,
              help="Chronological train,validation,test percentages of the time axis.")
@click.option("--origin-step", type=int, default=1, show_default=True,
              help="Steps between rolling forecast origins in the test period.")
@click.option("--partitions", type=click.IntRange(min=1), default=4, show_default=True,
              help="With --engine dask and --wide/--libcity: blocks of series fitted in parallel.")
@click.option("--block-mb", type=float, default=32, show_default=True,  # uda.tasks.flow.DEFAULT_BLOCK_MB
              help="With --data and a traffic target: MiB of series per block; fitting a block needs "
                   "about 25 times this, so lower it under a tight memory limit.")
@click.option("--out", type=click.Path(), default=None, help="Also write the JSON result to this file (or fsspec URL).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the results.")
def flow(data_dir, wide_file, libcity_path, long_files, interval, start, time_column, id_col, value_col,
         missing_text, irregular,
         adjacency, column, target, engine, scheduler, models, horizons, split_text, origin_step,
         partitions, block_mb, out, as_json) -> None:
    """Score flow forecasters with a rolling-origin protocol.

    The time axis is split chronologically (default 70/10/20 train/validation/test);
    models are fit on the training part (the ridge family chooses its formulation and
    penalty by cross-validation up to the end of the validation part, then refits) and
    forecast from every --origin-step-th step of the test period. MAE, RMSE and MAPE per
    horizon count only points whose actual value is finite and not zero.
    """
    from uda.errors import UserError

    sources = [s for s in (data_dir, wide_file, libcity_path, long_files or None) if s is not None]
    if len(sources) != 1:
        msg = "give exactly one input: --data DIR, --wide FILE, --long FILE or --libcity DIR"
        raise UserError(msg)
    split = _split(split_text)
    checks = [({"--adjacency": adjacency}, wide_file, "--wide tables"),
              ({"--irregular": irregular or None}, wide_file or long_files, "--wide and --long tables"),
              ({"--id-col": id_col, "--value-col": value_col}, long_files, "--long tables"),
              ({"--start": start}, wide_file, "--wide tables without a timestamp column"),
              ({"--column": column}, libcity_path, "--libcity inputs"),
              ({"--missing": missing_text}, not data_dir, "--wide, --long and --libcity inputs")]
    for options, allowed, what in checks:
        given = [k for k, v in options.items() if v is not None]
        if given and not allowed:
            msg = f"{', '.join(given)} only applies to {what}"
            raise UserError(msg)
    if data_dir is not None:
        from uda.cli.progress import progress_bar
        from uda.tasks.flow import run

        with progress_bar("flow") as progress:
            res = run(data_dir, engine=engine, scheduler=scheduler, target=target, models=models,
                      horizons=horizons, split=split, origin_step=origin_step, block_mb=block_mb,
                      progress=progress).summary
    else:
        from uda.forecasting.evaluation import evaluate

        if wide_file is not None:
            from uda.io.wide import read_wide

            if interval is None:
                msg = "--wide needs --interval (the step length, e.g. 5min)"
                raise UserError(msg)
            panel = read_wide(wide_file, interval=interval, start=start, time_column=time_column,
                              missing=missing_codes(missing_text), irregular=irregular)
            if adjacency is not None:
                from uda.io.adjacency import read_adjacency

                panel.indptr, panel.indices = read_adjacency(adjacency, len(panel.ids))
        elif long_files:
            from uda.io.long import read_long, stack_panels

            panel = stack_panels([read_long(f, interval=interval, time_column=time_column, id_column=id_col,
                                            value_column=value_col, missing=missing_codes(missing_text),
                                            irregular=irregular) for f in long_files])
        else:
            from uda.io.libcity import read_libcity

            panel = read_libcity(libcity_path, column=column, interval=interval,
                                 missing=missing_codes(missing_text))
        res = evaluate(panel, engine=engine, scheduler=scheduler, models=models,
                       horizons=horizons, split=split, origin_step=origin_step,
                       partitions=partitions)
        res["source"] = str(wide_file or libcity_path or ", ".join(long_files))
    res = json_safe(res)
    if out is not None:
        from uda.store import atomic_write_text, output_location

        with output_location(out, folder=False) as local:
            atomic_write_text(local, json.dumps(res, indent=1))
    if as_json:
        click.echo(json.dumps(res))
        return
    from rich.markup import escape

    from uda.cli.output import wide_console

    console = wide_console()
    console.print(_table(res))
    for note in res["notes"]:
        console.print(f"note: {escape(note)}")
    if out is not None:
        console.print(f"results written to {escape(out)}")
