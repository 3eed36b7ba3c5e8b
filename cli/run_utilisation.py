"""``uda run utilisation``: the data-utilisation funnel, quality metrics and detector scores."""

from __future__ import annotations

import json
from pathlib import Path

import click

from uda.cli.run import engine_option

_STAGES = ("collected", "valid", "standardised", "integrated", "used")


def plot_funnel(summary: dict, path: Path) -> None:
    """Bar chart of the funnel stages per table (shares of collected), one group per district."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from uda.store import atomic_write

    tables = list(summary["totals"])
    fig, axes = plt.subplots(1, len(tables), figsize=(4.2 * len(tables), 3.6), squeeze=False, sharey=True)
    for ax, table in zip(axes[0], tables, strict=True):
        districts = [d for d, per in summary["funnel"].items() if table in per]
        width = 0.8 / len(_STAGES)
        for j, stage in enumerate(_STAGES):
            shares = [summary["funnel"][d][table][stage] / max(1, summary["funnel"][d][table]["collected"])
                      for d in districts]
            ax.bar([i + j * width for i in range(len(districts))], shares, width, label=stage)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(districts))], districts)
        ax.set_xlabel("district")
        ax.set_title(table)
        low = min((summary["funnel"][d][table]["used"] / max(1, summary["funnel"][d][table]["collected"])
                   for d in districts), default=1.0)
        ax.set_ylim(max(0.0, low - 0.05), 1.005)
    axes[0][0].set_ylabel("share of collected records")
    axes[0][-1].legend(loc="lower right", fontsize=7)
    fig.suptitle(f"utilisation funnel ({summary['defects']})")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)


@click.command()
@click.option("--data", "data", required=True, type=click.Path(), help="Dataset folder written by `uda generate`.")
@engine_option("Engine of the standardisation and quality scans.")
@click.option("--repair", is_flag=True, help="Standardise with repairs (clock skew, drift).")
@click.option("--no-quality", is_flag=True, help="Skip the quality metrics (funnel and detectors only).")
@click.option("--no-write", is_flag=True, help="Standardise in memory; do not write DATA/clean/.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder or fsspec URL for utilisation.json and funnel.png [default: results/utilisation-<dataset>; "
                   "with --json only when given].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (funnel, detectors, quality).")
def utilisation(data: str, engine: str, scheduler: str | None, repair: bool, no_quality: bool, no_write: bool,
                out: str | None, as_json: bool) -> None:
    """Measure how much of the collected data is used: collected -> valid -> standardised
    -> integrated -> used, per district and table, with detector precision/recall against
    the injected defects and single-scan quality metrics.
    """
    from uda.tasks.utilisation import run

    res = run(data, engine=engine, scheduler=scheduler, repair=repair, quality=not no_quality, write=not no_write)
    s = res.summary
    target = out or (None if as_json else str(Path("results") / f"utilisation-{Path(data).name}"))
    if target is not None:
        from uda.store import atomic_write_text, output_location, shown_path

        with output_location(target, folder=True) as folder:
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write_text(folder / "utilisation.json", json.dumps(s, indent=1))
            plot_funnel(s, folder / "funnel.png")
        written = [shown_path(target, folder, folder / name) for name in ("utilisation.json", "funnel.png")]
    if as_json:
        click.echo(json.dumps(s))
        return
    from rich.markup import escape
    from rich.table import Table

    from uda.cli.output import wide_console

    console = wide_console()
    tab = Table(title=escape(f"utilisation funnel: {data} (defects {s['defects']}, {engine})"))
    tab.add_column("district")
    tab.add_column("table")
    for stage in _STAGES:
        tab.add_column(stage, justify="right")
    tab.add_column("used %", justify="right")
    for d, per in s["funnel"].items():
        for t, c in per.items():
            tab.add_row(escape(s["district_names"].get(d, d)), t, *(f"{c[x]:,}" for x in _STAGES),
                        f"{100 * c['used'] / max(1, c['collected']):.2f}")
    for t, c in s["totals"].items():
        tab.add_row("all", t, *(f"{c[x]:,}" for x in _STAGES), f"{100 * c['used'] / max(1, c['collected']):.2f}")
    console.print(tab)
    det = Table(title="defect detectors against truth")
    for col in ("defect", "precision", "recall", "TP", "FP", "FN"):
        det.add_column(col, justify="left" if col == "defect" else "right")
    for kind, v in s["detectors"].items():
        det.add_row(kind, f"{v['precision']:.3f}", f"{v['recall']:.3f}", f"{v['tp']:,}", f"{v['fp']:,}", f"{v['fn']:,}")
    console.print(det)
    if s["quality"]:
        q = Table(title="quality (ISO/IEC 25012 / 25024), whole tables")
        measures = ("completeness_value", "completeness_interval", "accuracy_syntactic", "accuracy_range",
                    "accuracy_stuck", "uniqueness", "consistency_format", "referential_integrity", "timeliness")
        q.add_column("measure")
        for t in s["quality"]:
            q.add_column(t, justify="right")
        for m in measures:
            vals = [s["quality"][t]["overall"][m] for t in s["quality"]]
            q.add_row(m, *("-" if v is None else f"{v:.4f}" for v in vals))
        q.add_row("distinct keys (HLL)", *(f"{s['quality'][t]['overall']['distinct_keys_est']:,.0f}"
                                          for t in s["quality"]))
        console.print(q)
    for f in s["findings"]:
        console.print(f"finding: {escape(f['file'])}: {escape(f['message'])}")
    console.print(f"written: {escape(', '.join(written))}")
