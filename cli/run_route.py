"""``uda run route``: traffic assignment on a TNTP network or on a generated city."""

from __future__ import annotations

import json

import click

from uda.cli.run import engine_option

_ALGORITHMS = ("aon", "fw", "cfw", "bfw")


def _assignment_table(title: str, summary: dict):
    from rich.markup import escape
    from rich.table import Table

    tab = Table(title=escape(title))
    tab.add_column("measure")
    tab.add_column("value", justify="right")
    rows = [
        ("algorithm", summary["algorithm"]),
        ("relative gap", f"{summary['relative_gap']:.3e}"),
        ("converged", "yes" if summary["converged"] else "no"),
        ("iterations", f"{summary['iterations']:,}"),
        ("Beckmann objective", f"{summary['objective']:,.3f}"),
        ("total travel time", f"{summary['total_travel_time']:,.3f}"),
        ("total demand", f"{summary['total_demand']:,.1f}"),
        ("unassigned demand (no path)", f"{summary['unreachable_demand']:,.1f} ({summary['unreachable_pairs']} OD pairs)"),
        ("max volume/capacity", "-" if summary["max_vc"] is None else f"{summary['max_vc']:.3f}"),
        ("links over capacity", f"{summary['links_over_capacity']:,} of {summary['links']:,}"),
        ("seconds", f"{summary['seconds']:.3f}"),
        ("compile seconds", f"{summary['compile_seconds']:.3f}"),
    ]
    for name, value in rows:
        tab.add_row(name, str(value))
    return tab


def _congested_table(summary: dict):
    from rich.table import Table

    tab = Table(title="most congested links")
    for col in ("from", "to", "flow", "capacity", "v/c", "cost"):
        tab.add_column(col, justify="right")
    for link in summary["most_congested"]:
        tab.add_row(str(link["init_node"]), str(link["term_node"]), f"{link['flow']:,.1f}",
                    f"{link['capacity']:,.1f}", f"{link['vc']:.3f}", f"{link['cost']:,.3f}")
    return tab


@click.command()
@click.option("--data", "data_dir", type=click.Path(), default=None,
              help="Generated dataset folder: travel times from sensors, OD, assignment and sites.")
@click.option("--tntp", "tntp_dir", type=click.Path(), default=None,
              help="TNTP folder holding <Name>_net.tntp and <Name>_trips.tntp: run assignment on it.")
@engine_option("With --data: engine for the sensor aggregation.")
@click.option("--slot-minutes", type=int, default=60, show_default=True,
              help="With --data: length of a time-of-day slot for link travel times.")
@click.option("--slot", type=int, default=None,
              help="With --data: slot whose travel times drive the site choice [default: the peak slot].")
@click.option("--od", "od_file", default="gravity", show_default=True,
              help="With --data: 'gravity' (zone population and jobs), 'taps' (smart-card trip pattern, "
                   "scaled to the gravity total) or an OD matrix CSV/Parquet (origin_zone,dest_zone,flow).")
@click.option("--trip-rate", type=float, default=0.2, show_default=True,
              help="With --data: gravity model vehicle trips per resident in the assigned hour.")
@click.option("--beta", "beta_per_min", type=float, default=0.1, show_default=True,
              help="With --data: gravity model deterrence per minute of free-flow travel time.")
@click.option("--sites", type=int, default=5, show_default=True,
              help="With --data: number of sites to choose (p-median on population-weighted travel time).")
@click.option("--algorithm", type=click.Choice(_ALGORITHMS), default="bfw", show_default=True,
              help="Assignment algorithm: all-or-nothing, Frank-Wolfe, conjugate or bi-conjugate FW.")
@click.option("--gap", type=float, default=1e-4, show_default=True,
              help="Stop at this relative gap (TSTT - SPTT) / TSTT.")
@click.option("--max-iter", type=int, default=1000, show_default=True, help="Iteration limit.")
@click.option("--unreachable", type=click.Choice(["error", "drop"]), default="error", show_default=True,
              help="OD demand without a path: fail, or leave it unassigned and report it.")
@click.option("--out", type=click.Path(), default=None,
              help="With --tntp: link flows CSV (init_node,term_node,flow). With --data: results folder. "
                   "A path or an fsspec URL.")
@click.option("--force", is_flag=True, help="Replace an existing --out file (or the route results in an --out folder).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the results.")
def route(data_dir, tntp_dir, engine, scheduler, slot_minutes, slot, od_file, trip_rate, beta_per_min, sites,
          algorithm, gap, max_iter, unreachable, out, force, as_json) -> None:
    """Run user-equilibrium traffic assignment and report its quality.

    With --tntp, the network and demand come from TNTP files. With --data, link
    travel times per time-of-day slot come from the sensor data, OD demand from a
    gravity model on zone population and jobs (or smart-card trips, or a file: see
    --od), the demand is assigned on the city's road graph, and p-median picks --sites
    sites. The summary gives the relative gap (recomputed from a fresh all-or-nothing
    on the final costs), Beckmann objective, total travel time and the most congested
    links.
    """
    from uda.errors import UserError
    from uda.routing.assignment import assign_tntp, check_finite
    from uda.store import output_location, split_location
    from uda.tasks.route import RESULT_FILES, check_flows_path, check_results_folder, write_flows

    if data_dir is not None and tntp_dir is not None:
        msg = "give either --data or --tntp, not both"
        raise UserError(msg)
    check_finite(gap=gap, trip_rate=trip_rate, beta=beta_per_min)
    if out is not None:
        fs, where = split_location(out)
        if fs is None:
            (check_flows_path if data_dir is None else check_results_folder)(where, force=force)
        elif not force:
            names = [""] if data_dir is None else [f"/{n}" for n in RESULT_FILES]
            if any(fs.exists(f"{where}{n}") for n in names):
                msg = f"--out {out} already holds results; choose another location or pass --force to replace them"
                raise UserError(msg)
    if data_dir is not None:
        _run_city(data_dir, engine=engine, scheduler=scheduler, slot_minutes=slot_minutes, slot=slot,
                  od=od_file, trip_rate=trip_rate, beta_per_min=beta_per_min, sites=sites, algorithm=algorithm,
                  gap=gap, max_iter=max_iter, unreachable=unreachable, out=out, as_json=as_json)
        return
    if tntp_dir is None:
        msg = "give --tntp DIR (a folder with <Name>_net.tntp and <Name>_trips.tntp) or --data DIR (a generated dataset)"
        raise UserError(msg)
    ra = assign_tntp(tntp_dir, algorithm=algorithm, gap=gap, max_iter=max_iter, unreachable=unreachable)
    if out is not None:
        with output_location(out, folder=False) as local:
            write_flows(ra, local)
    summary = ra.summary()
    if as_json:
        click.echo(json.dumps({"network": str(tntp_dir), "out": out, **summary}))
        return
    from uda.cli.output import wide_console

    console = wide_console()
    console.print(_assignment_table(f"assignment on {tntp_dir}", summary))
    console.print(_congested_table(summary))
    if out is not None:
        console.print(f"link flows written to {out}", markup=False)


def _run_city(data_dir, *, out, as_json, **options) -> None:
    from uda.store import output_location
    from uda.tasks.route import run

    if out is None:
        res = run(data_dir, **options)
    else:
        with output_location(out, folder=True) as local:
            res = run(data_dir, out=local, **options)
    if as_json:
        click.echo(json.dumps({"dataset": str(data_dir), "engine": res.engine, "out": out, "quality": res.quality,
                               "rows_in": res.rows_in, "bytes_in": res.bytes_in, **res.summary}))
        return
    from rich.table import Table

    from uda.cli.output import wide_console

    console = wide_console()
    s = res.summary
    console.print(_assignment_table(f"route on {data_dir} ({res.engine})", s))
    console.print(_congested_table(s))
    tab = Table(title="travel times and sites")
    tab.add_column("measure")
    tab.add_column("value", justify="right")
    q = res.quality
    tab.add_row("links with sensors", f"{q['sensor_link_share']:.1%}")
    tab.add_row("slot used for sites", f"{s['slot']} ({s['slot_minutes']}-minute slots; peak {s['peak_slot']})")
    tab.add_row("sites (node ids)", ", ".join(map(str, s["sites"])))
    tab.add_row("mean travel time to nearest site", f"{q['site_mean_travel_time_s']:.1f} s "
                f"(greedy start {q['site_greedy_mean_travel_time_s']:.1f} s)")
    for name, sec in s["stage_seconds"].items():
        tab.add_row(f"{name} seconds", f"{sec:.3f}")
    console.print(tab)
    if out is not None:
        console.print(f"results written to {out}", markup=False)
