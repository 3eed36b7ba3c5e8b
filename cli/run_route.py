"""``uda run route``: traffic assignment on a TNTP network or on a generated city."""

from __future__ import annotations

import json

import click

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
@click.option("--tntp", "tntp_dir", type=click.Path(), default=None,
              help="TNTP folder holding <Name>_net.tntp and <Name>_trips.tntp: run assignment on it.")
@click.option("--algorithm", type=click.Choice(_ALGORITHMS), default="bfw", show_default=True,
              help="Assignment algorithm: all-or-nothing, Frank-Wolfe, conjugate or bi-conjugate FW.")
@click.option("--gap", type=float, default=1e-4, show_default=True,
              help="Stop at this relative gap (TSTT - SPTT) / TSTT.")
@click.option("--max-iter", type=int, default=1000, show_default=True, help="Iteration limit.")
@click.option("--unreachable", type=click.Choice(["error", "drop"]), default="error", show_default=True,
              help="OD demand without a path: fail, or leave it unassigned and report it.")
@click.option("--out", type=click.Path(), default=None,
              help="With --tntp: write link flows as CSV (init_node,term_node,flow).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the results.")
def route(tntp_dir, algorithm, gap, max_iter, unreachable, out, as_json) -> None:
    """Run user-equilibrium traffic assignment and report its quality.

    With --tntp, the network and demand come from TNTP files; the summary gives the
    relative gap (recomputed from a fresh all-or-nothing on the final costs), Beckmann
    objective, total travel time and the most congested links.
    """
    from uda.errors import UserError
    from uda.tasks.route import assign_tntp

    if tntp_dir is None:
        msg = "give --tntp DIR (a folder with <Name>_net.tntp and <Name>_trips.tntp)"
        raise UserError(msg)
    ra = assign_tntp(tntp_dir, algorithm=algorithm, gap=gap, max_iter=max_iter, unreachable=unreachable)
    if out is not None:
        ra.write_flows(out)
    summary = ra.summary()
    if as_json:
        click.echo(json.dumps({"network": str(tntp_dir), "out": out, **summary}))
        return
    from rich.console import Console

    console = Console()
    console.print(_assignment_table(f"assignment on {tntp_dir}", summary))
    console.print(_congested_table(summary))
    if out is not None:
        console.print(f"link flows written to {out}", markup=False)
