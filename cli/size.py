"""``uda size``: cores, memory and storage for a city, from measured scale sweeps."""

from __future__ import annotations

import json

import click


@click.command()
@click.option("--sensors", type=int, required=True, help="Traffic sensors in the city.")
@click.option("--days", type=float, required=True, help="Days of data processed in one run.")
@click.option("--interval", default="5min", show_default=True, help="Sensor reporting interval (e.g. 5min, 30s, 1h).")
@click.option("--deadline", default="1h", show_default=True, help="Time allowed for processing the days of data.")
@click.option("--stations", type=int, default=None, help="Transit stations [default: in proportion to sensors].")
@click.option("--water-sites", type=int, default=None, help="Water monitoring sites [default: in proportion to sensors].")
@click.option("--results", "results", multiple=True, default=["results"], show_default=True,
              help="Results files or folders with scale sweeps (repeatable).")
@click.option("--task", "tasks", multiple=True, help="Only this task (repeatable).")
@click.option("--engine", "engines", multiple=True, help="Only this engine (repeatable).")
@click.option("--time-model", type=click.Choice(["affine", "power"]), default="affine", show_default=True,
              help="Model of time against rows: fixed cost plus cost per row, or a power law.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def size(sensors: int, days: float, interval: str, deadline: str, stations, water_sites, results,
         tasks, engines, time_model: str, as_json: bool) -> None:
    """Estimate cores, memory and storage per day for a city of SENSORS over DAYS.

    Time, CPU and peak memory are fitted against input rows from the measured scale
    sweeps in RESULTS (a fixed cost plus a cost per row, or a power law for time), then
    evaluated at the city's size. The fit's error on the held-out largest measured scale
    is shown.
    """
    from uda.harness.sizing import parse_duration
    from uda.harness.sizing import size as estimate

    out = estimate(sensors=sensors, days=days, interval_s=parse_duration(interval, option="--interval"),
                   deadline_s=parse_duration(deadline, option="--deadline"), results=list(results),
                   stations=stations, water_sites=water_sites, tasks=list(tasks) or None,
                   engines=list(engines) or None, time_model=time_model)
    if as_json:
        click.echo(json.dumps(out))
        return
    from rich.markup import escape
    from rich.table import Table

    from uda.cli.output import wide_console

    city = out["city"]
    tab = Table(title=f"{sensors:,} sensors every {city['interval_s']:g} s over {days:g} days, "
                      f"deadline {city['deadline_s']:g} s")
    for col in ("task", "engine", "input rows", "wall s (measured machine)", "CPU s", "cores",
                "peak GiB", "held-out error (time / memory)", "fitted on"):
        tab.add_column(col, justify="left" if col in ("task", "engine", "fitted on") else "right")

    def pct(h, m):
        return f"{h[m]['relative_error']:+.0%}" if h else "–"

    for e in out["estimates"]:
        if e.get("rows_in") is None:
            continue
        h = e["held_out"]
        tab.add_row(escape(e["task"]), escape(e["engine"]), f"{e['rows_in']:,.0f}", f"{e['wall_s']:,.1f}",
                    f"{e['cpu_s']:,.1f}", str(e["cores"]), f"{e['peak_rss_bytes'] / 2**30:,.2f}",
                    f"{pct(h, 'wall_s')} / {pct(h, 'peak_rss_bytes')}",
                    escape(", ".join(str(s) for s in e["scales"])))
    console = wide_console()
    console.print(tab)
    st = out["storage"]
    console.print(f"storage: {st['total_bytes_per_day'] / 1e9:,.3f} GB per day, "
                  f"{st['total_bytes'] / 1e9:,.2f} GB for {days:g} days ({st['format']})",
                  markup=False, highlight=False)
