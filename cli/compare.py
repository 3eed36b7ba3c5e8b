"""``uda compare``: flag regressions between two results files (exit 1 when one is found)."""

from __future__ import annotations

import json

import click


@click.command()
@click.argument("baseline", metavar="A.json")
@click.argument("candidate", metavar="B.json")
@click.option("--threshold", type=float, default=0.1, show_default=True,
              help="Relative slowdown tolerated before a case counts as a regression.")
@click.option("--metric", default="wall_s", show_default=True,
              type=click.Choice(["wall_s", "cpu_s", "peak_rss_bytes"]), help="What to compare.")
@click.option("--confidence", type=float, default=0.95, show_default=True,
              help="Confidence level of the bootstrap interval of each ratio.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def compare(baseline: str, candidate: str, threshold: float, metric: str, confidence: float,
            as_json: bool) -> None:
    """Compare run B against baseline A, case by case.

    For each case the ratio of medians B/A of the warm repeats gets a bootstrap
    confidence interval; a regression is a case whose interval's lower bound exceeds
    1 + threshold, or a case that was ok in A and fails in B. Exit status 1 when a
    regression is found, 0 otherwise, and 2 when there is nothing to compare (no case in
    both runs with enough measurements on each side).
    """
    from uda.errors import UserError
    from uda.harness.compare import MIN_REPEATS, VERDICTS_COMPARED, compare_results
    from uda.harness.results import load_results

    out = compare_results(load_results(baseline), load_results(candidate), threshold=threshold,
                          metric=metric, confidence=confidence)
    if not any(r["verdict"] in VERDICTS_COMPARED for r in out["cases"]):
        counts: dict[str, int] = {}
        for r in out["cases"]:
            counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
        why = ", ".join(f"{n} {v.replace('_', ' ')}" for v, n in sorted(counts.items())) or "neither run has a case"
        msg = (f"nothing to compare between {baseline} and {candidate} on {metric} ({why}); a comparison "
               f"needs cases present in both runs with at least {MIN_REPEATS} positive measurements each")
        raise UserError(msg)
    if as_json:
        click.echo(json.dumps(out))
    else:
        from rich.markup import escape
        from rich.table import Table

        from uda.cli.output import wide_console

        tab = Table(title=f"{metric}: B/A ratio of medians, {confidence:.0%} CI, threshold {threshold:.0%}")
        for col in ("case", "A median", "B median", "ratio", "CI", "verdict"):
            tab.add_column(col, justify="left" if col in ("case", "verdict") else "right")
        for r in out["cases"]:
            ratio = f"{r['ratio']:.3f}" if r["ratio"] is not None else "–"
            ci = f"{r['ci_low']:.3f} – {r['ci_high']:.3f}" if r["ci_low"] is not None else "–"
            med = [f"{r[k]:.4g}" if r[k] is not None else "–" for k in ("median_a", "median_b")]
            verdict = r["verdict"]
            style = "bold red" if verdict in ("regression", "failed") else ("green" if verdict in ("improvement", "fixed") else "")
            tab.add_row(escape(r["id"]), *med, ratio, ci, f"[{style}]{verdict}[/]" if style else verdict)
        console = wide_console()
        console.print(tab)
        if not out["same_machine"]:
            console.print("note: the two runs come from different machines", markup=False)
        n = len(out["regressions"])
        console.print(f"{n} regression{'s' if n != 1 else ''} found" if n else "no regression found",
                      markup=False)
    if out["regressions"]:
        click.get_current_context().exit(1)
