"""``uda size``: time, cores, memory and storage for a city, from measured scale sweeps."""

from __future__ import annotations

import json
import math

import click


@click.command()
@click.option("--sensors", type=int, default=None, help="Traffic sensors in the city.")
@click.option("--days", type=float, default=None, help="Days of data processed in one run.")
@click.option("--interval", default="5min", show_default=True, help="Sensor reporting interval (e.g. 5min, 30s, 1h).")
@click.option("--deadline", default="1h", show_default=True, help="Time allowed for processing the days of data.")
@click.option("--stations", type=int, default=None, help="Transit stations [default: in proportion to sensors].")
@click.option("--water-sites", type=int, default=None, help="Water monitoring sites [default: in proportion to sensors].")
@click.option("--results", "results", multiple=True, default=["results"], show_default=True,
              help="Results files or folders with scale sweeps (repeatable).")
@click.option("--task", "tasks", multiple=True, help="Only this task (repeatable).")
@click.option("--engine", "engines", multiple=True, help="Only this engine (repeatable).")
@click.option("--model", type=click.Choice(["design", "rows"]), default="design", show_default=True,
              help="design: each task's own terms (per row, per block in flight, per link, zone pair, "
                   "sensor-day); rows: fixed plus per row for time and memory alike (for comparison).")
@click.option("--check", "check_with", multiple=True, metavar="RESULTS",
              help="Instead of a city: predict every case of these results files from a fit on --results "
                   "without them, and print predicted / measured (e.g. `uda bench --suite validate`).")
@click.option("--probe-seconds", type=click.FloatRange(min=0), default=60.0, show_default=True,
              help="Budget of the probe that runs route's network stages (gravity OD, assignment, sites) on the "
                   "target's street network, on this machine, instead of extrapolating them from the sweep; "
                   "0 fits them on the sweep.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def size(sensors, days, interval: str, deadline: str, stations, water_sites, results, tasks, engines,
         model: str, check_with, probe_seconds: float, as_json: bool) -> None:
    """Estimate time, cores, memory and storage for a city of SENSORS over DAYS.

    Wall time, CPU time and peak memory are modelled per task and engine as a sum of
    terms that follow the task's design (fixed cost, per row, per block in flight, per
    link, zone pair or sensor-day; see docs/harness.md), fitted on the scale sweeps in
    RESULTS and evaluated at the city's sizes. Each estimate shows its dominant term, the
    error on the held-out largest measured scale, and a warning beyond 10x that scale.
    Cores and the Dask cluster form come from the parallel efficiency the sweep measured
    (one vs two cores, one vs two workers).

    Route's network stages depend on the street network only, not on the data rows: they
    are measured by a short probe on the target's network (built as the generator builds
    it, no data) within --probe-seconds, and said so in the output.
    """
    from uda.errors import UserError
    from uda.harness.sizing import city
    from uda.harness.sizing.check import check

    if not math.isfinite(probe_seconds):
        msg = f"--probe-seconds must be a finite number of seconds (0 fits on the sweep only); got {probe_seconds}"
        raise UserError(msg)
    if check_with:
        out = check(results=list(results), against=list(check_with), tasks=list(tasks) or None,
                           engines=list(engines) or None, model=model, probe_s=probe_seconds)
        if as_json:
            click.echo(json.dumps(out))
        else:
            _print_check(out)
        return
    if sensors is None or days is None:
        msg = "give --sensors N and --days D (the city to size), or --check RESULTS to validate the fit"
        raise UserError(msg)
    out = city.size(sensors=sensors, days=days,
                      interval_s=city.parse_duration(interval, option="--interval"),
                      deadline_s=city.parse_duration(deadline, option="--deadline"), results=list(results),
                      stations=stations, water_sites=water_sites, tasks=list(tasks) or None,
                      engines=list(engines) or None, model=model, probe_s=probe_seconds)
    if as_json:
        click.echo(json.dumps(out))
        return
    _print_size(out)


def _gib(b: float) -> str:
    return f"{b / 2**30:,.2f}"


def _secs(s: float) -> str:
    return f"{s:,.0f}" if s >= 100 else f"{s:,.1f}"


def _print_size(out: dict) -> None:
    from rich.markup import escape
    from rich.table import Table

    from uda.cli.output import wide_console
    from uda.harness.sizing.fitting import short_scale

    city = out["city"]
    tab = Table(title=f"{city['sensors']:,} sensors every {city['interval_s']:g} s over {city['days']:g} days, "
                      f"deadline {city['deadline_s']:g} s (model: {out['model']})")
    cols = ("task", "engine", "input rows", "wall s", "time mostly", "cores", "Dask cluster",
            "peak GiB", "memory mostly", "held-out error wall / peak", "x largest")
    for col in cols:
        tab.add_column(col, justify="left" if col in ("task", "engine", "time mostly", "memory mostly",
                                                      "held-out error wall / peak", "Dask cluster") else "right")

    def pct(h: dict | None, m: str) -> str:
        return f"{h[m]['relative_error']:+.0%}" if h else "–"

    for e in out["estimates"]:
        if e.get("rows_in") is None:
            continue
        h = e["held_out"]
        wd, md = e["wall_s_dominant"], e["peak_rss_bytes_dominant"]
        cores = e.get("cores")
        cores_txt = ("none" if cores is None else str(cores)) + ("" if e.get("cores_basis") == "measured" else "*")
        cl = e.get("cluster")
        cluster = "–" if "cluster" not in e else ("none" if cl is None else
                                                   f"{cl['workers']} x {_gib(cl['memory_per_worker_bytes'])} GiB")
        held = (f"{pct(h, 'wall_s')} / {pct(h, 'peak_rss_bytes')} at "
                f"{', '.join(short_scale(x) for x in h['held_out_scale'].split(', '))}" if h
                else "– (3 sizes needed)")
        tab.add_row(escape(e["task"]), escape(e["engine"]), f"{e['rows_in']:,.0f}", _secs(e["wall_s"]),
                    f"{wd['term']} {wd['share']:.0%}", cores_txt, cluster, _gib(e["peak_rss_bytes"]),
                    f"{md['term']} {md['share']:.0%}", escape(held),
                    f"{e['extrapolation']:,.1f}" + (" !" if e["extrapolation"] > 10 else ""))
    console = wide_console()
    console.print(tab)
    say = lambda text: console.print(text, markup=False, highlight=False)  # noqa: E731
    say("wall s: on the measured machine's cores; cores: that meet the deadline on one machine, from the measured "
        "1- vs 2-core speed-up (* = CPU s / deadline, no efficiency measured); Dask cluster: single-threaded "
        "workers x memory each, from the measured 1- vs 2-worker LocalCluster; none: no count meets the deadline.")
    for name, eff in out.get("efficiency", {}).items():
        say(f"efficiency {name} at {short_scale(eff['scale'])}: speed-up {eff['speedup']:.2f} from 1 to 2 "
            f"{'cores' if eff['form'] == 'cores' else 'workers'} (parallel fraction {eff['parallel_fraction']:.2f})")
    for note in out.get("notes", []):
        say(f"note: {note}")
    st = out["storage"]
    say(f"storage: {st['total_bytes_per_day'] / 1e9:,.3f} GB per day, {st['total_bytes'] / 1e9:,.2f} GB for "
        f"{city['days']:g} days ({st['format']})")


def _print_check(out: dict) -> None:
    from rich.markup import escape
    from rich.table import Table

    from uda.cli.output import wide_console
    from uda.harness.sizing.fitting import short_scale

    tab = Table(title=f"predicted / measured on data the fit never saw (model: {out['model']})")
    for col in ("task", "engine", "scale", "rows", "fitted on", "wall measured s", "predicted", "ratio",
                "CPU measured s", "predicted", "ratio", "peak measured GiB", "predicted", "ratio"):
        tab.add_column(col, justify="left" if col in ("task", "engine", "scale", "fitted on") else "right")
    def cpu(c: dict) -> tuple[str, str, str]:
        if c["measured"] is None:
            return "–", _secs(c["predicted"]), "–"
        return _secs(c["measured"]), _secs(c["predicted"]), f"{c['ratio']:.2f}"

    for r in out["rows"]:
        w, p = r["wall_s"], r["peak_rss_bytes"]
        tab.add_row(escape(r["task"]), escape(r["engine"]), escape(short_scale(r["scale"])), f"{r['rows']:,.0f}",
                    escape(", ".join(map(short_scale, r["fitted_on"]))), _secs(w["measured"]), _secs(w["predicted"]),
                    f"{w['ratio']:.2f}", *cpu(r["cpu_s"]), _gib(p["measured"]), _gib(p["predicted"]),
                    f"{p['ratio']:.2f}")
    console = wide_console()
    console.print(tab)
    wf = out["worst_factor"]
    console.print("worst factor: " + ", ".join(f"{name} {wf[m]:.2f}" for name, m in
                                               (("wall", "wall_s"), ("CPU", "cpu_s"), ("peak", "peak_rss_bytes"))
                                               if wf.get(m)), markup=False, highlight=False)
    for note in out.get("notes", []):
        console.print(f"note: {note}", markup=False, highlight=False)
