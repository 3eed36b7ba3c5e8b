"""``uda run quality --table FILE``: profile any table in one streaming scan."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


def _worst_first(rep: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Columns ordered by the share of cells that are missing, invalid or unparseable, then stuck rows."""
    return sorted(rep["columns"].items(), key=lambda kv: (kv[1]["valid_share"], -kv[1]["stuck_rows"], kv[0]))


def plot_profile(prof, rep: dict[str, Any], path: Path, *, max_groups: int = 8) -> None:
    """Completeness of the cells and rows received per expected row over time, one line per group."""
    import matplotlib

    matplotlib.use("Agg")
    import datetime as dt

    import matplotlib.pyplot as plt
    import numpy as np
    import polars as pl

    from uda.store import atomic_write

    bins = prof.bin_table()
    ncells = max(1, len(prof.names) - 1 - (1 if prof.group_col else 0))
    span_h = int(bins["hour"].max() - bins["hour"].min() + 1) if bins.height else 1
    width_h = 1 if span_h <= 72 else 24 if span_h <= 24 * 120 else 24 * 7
    label = {1: "hour", 24: "day", 24 * 7: "week"}[width_h]
    per = (bins.with_columns((pl.col("hour") // width_h * width_h).alias("bin"))
           .group_by("group", "bin").agg(pl.col("rows").sum(), pl.col("missing").sum()).sort("group", "bin"))
    groups = rep.get("groups")
    order = (sorted(groups, key=lambda g: -sum(c["nulls"] + c["sentinels"] for c in groups[g]["columns"].values()))
             if groups else per["group"].unique().to_list())[:max_groups]
    fig, axes = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    for gname in order:
        d = per.filter(pl.col("group") == gname)
        if d.height == 0:
            continue
        full = pl.DataFrame({"bin": range(int(d["bin"].min()), int(d["bin"].max()) + 1, width_h)},
                            schema={"bin": pl.Int64})
        d = full.join(d.with_columns(pl.col("bin").cast(pl.Int64)), on="bin", how="left").with_columns(
            pl.col("rows").fill_null(0), pl.col("missing").fill_null(0))  # bins with no rows at all: 0 received
        x = [dt.datetime(1970, 1, 1) + dt.timedelta(hours=int(h)) for h in d["bin"]]
        cells = d["rows"].to_numpy() * ncells
        comp = np.where(cells > 0, 1.0 - d["missing"].to_numpy() / cells.clip(min=1), np.nan)
        axes[0].step(x, comp, where="post", label=str(gname), lw=1)
        step_s = (groups[gname]["time"]["step_s"] if groups else rep["time"].get("step_s")) if rep.get("time") else None
        if step_s is None and rep.get("time"):
            step_s = rep["time"]["groups_step_s"] if "groups_step_s" in rep["time"] else None
        if step_s:
            expected = width_h * 3600 / step_s
            axes[1].step(x, d["rows"].to_numpy() / expected, where="post", lw=1)
    axes[0].set_ylabel("cells present\n(not null, not sentinel)")
    axes[0].set_ylim(-0.02, 1.02)
    axes[1].set_ylabel(f"rows received /\nexpected per {label}")
    axes[1].axhline(1.0, color="grey", lw=0.5)
    if len(order) > 1:
        axes[0].legend(fontsize=7, loc="lower left", ncols=min(4, len(order)))
    t = rep.get("time") or {}
    fig.suptitle(f"{Path(rep['table']).name}: {rep['rows']:,} rows; gaps {t.get('gaps', '-')}, "
                 f"duplicated times {t.get('duplicates', '-')}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)


def _print(rep: dict[str, Any], top: int) -> None:
    from rich.markup import escape
    from rich.table import Table

    from uda.cli.output import wide_console

    console = wide_console()
    t = rep.get("time")
    head = f"{rep['rows']:,} rows, {len(rep['columns'])} columns, {rep['duplicate_rows']:,} exact duplicate rows"
    if "key" in rep:
        head += f", key {rep['key']['columns']}: {rep['key']['duplicates']:,} duplicates"
    tab = Table(title=escape(f"quality of {rep['table']} ({head}); worst columns first"))
    for c in ("column", "type", "complete %", "nulls", "sentinels", "invalid", "unparseable", "stuck",
              "outliers", "distinct≈", "p50≈", "range (from)"):
        tab.add_column(c, justify="left" if c in ("column", "type", "range (from)") else "right")
    for name, c in _worst_first(rep)[:top]:
        sent = f"{c['sentinels']:,}" + (f" {list(c['sentinel_values'])}" if c["sentinels"] else "")
        rng = "-" if not c.get("range") else f"{c['range'][0]:g}..{c['range'][1]:g} ({c['range_from']})"
        q = c.get("quantiles")
        tab.add_row(escape(name), c["type"], f"{100 * c['completeness']:.2f}", f"{c['nulls']:,}", escape(sent),
                    f"{c['invalid']:,}", f"{c['unparseable']:,}", f"{c['stuck_rows']:,}",
                    f"{c.get('outliers', 0):,}" if c["type"] in ("int", "float") else "-",
                    f"{c['distinct_est']:,.0f}", "-" if not q else f"{q['p50']:.4g}", escape(rng))
    console.print(tab)
    if len(rep["columns"]) > top:
        console.print(f"({len(rep['columns']) - top} better columns not shown; --top N or --json for all)")
    if t:
        console.print(escape(f"time {t['column']}: {t['first']} .. {t['last']}, step {t['step']}, gaps {t['gaps']:,} "
                             f"(longest {t['longest_gap']}, {t['missing_steps']:,} steps missing), irregular steps "
                             f"{t['irregular_steps']:,}, duplicated {t['duplicates']:,}, out of order "
                             f"{t['out_of_order']:,}, null {t['nulls']:,}, unparseable {t['unparseable']:,}"))
    if "groups" in rep:
        g = Table(title=escape(f"per {rep['group_col']}"))
        for c in ("group", "rows", "missing cells", "invalid", "step", "gaps", "longest gap", "dup times",
                  "out of order"):
            g.add_column(c, justify="left" if c == "group" else "right")
        for name, v in sorted(rep["groups"].items(), key=lambda kv: -sum(
                c["nulls"] + c["sentinels"] for c in kv[1]["columns"].values()))[:top]:
            tm = v.get("time", {})
            g.add_row(escape(name), f"{v['rows']:,}", f"{sum(c['nulls'] + c['sentinels'] for c in v['columns'].values()):,}",
                      f"{sum(c['invalid'] for c in v['columns'].values()):,}", str(tm.get("step", "-")),
                      f"{tm.get('gaps', 0):,}", str(tm.get("longest_gap") or "-"), f"{tm.get('duplicates', 0):,}",
                      f"{tm.get('out_of_order', 0):,}")
        console.print(g)
    if "funnel" in rep:
        f = rep["funnel"]
        console.print("funnel: " + " -> ".join(f"{k} {f[k]:,} ({100 * f['shares'][k]:.2f} %)"
                                              for k in ("collected", "valid", "standardised", "usable")))
    console.print(escape(f"sketches: distinct {rep['sketches']['distinct']}; quantiles {rep['sketches']['quantiles']}"))
    for f in rep["findings"]:
        console.print(f"finding: {escape(f)}")


@click.command()
@click.option("--table", "table", required=True, help="CSV or Parquet file, a folder or glob of them, or an fsspec URL.")
@click.option("--schema", "schema", type=click.Path(dir_okay=False), default=None,
              help="Schema TOML: types, ranges, sentinels, allowed values, time/group/key (inferred when absent).")
@click.option("--time-col", default=None, help="Time column (default: the schema's, or the one datetime column).")
@click.option("--key", default=None, help="Comma-separated columns that should be unique together.")
@click.option("--group-col", default=None, help="Profile per value of this column (site, sensor, district).")
@click.option("--needs", type=click.Path(dir_okay=False), default=None,
              help="Needs spec TOML (columns, ranges, step, key) for the collected -> valid -> standardised -> usable funnel.")
@click.option("--write-schema", type=click.Path(dir_okay=False), default=None,
              help="Write the inferred schema (TOML) here, to check the next delivery with --schema.")
@click.option("--plot", type=click.Path(dir_okay=False), default=None,
              help="PNG of completeness and rows received over time per group.")
@click.option("--batch-rows", type=click.IntRange(1000), default=1 << 20, show_default=True,
              help="At most this many rows per streamed batch (memory bound).")
@click.option("--top", type=click.IntRange(1), default=20, show_default=True, help="Columns and groups shown.")
@click.option("--json", "as_json", is_flag=True, help="Print the profile as one JSON object.")
def quality(table: str, schema: str | None, time_col: str | None, key: str | None, group_col: str | None,
            needs: str | None, write_schema: str | None, plot: str | None, batch_rows: int, top: int,
            as_json: bool) -> None:
    """Profile a department's table in one streaming scan: completeness (nulls, sentinels),
    validity (ranges, allowed values, unparseable cells, mixed types), uniqueness (key, exact
    duplicate rows), timeliness (step, gaps, duplicated and out-of-order times), stuck runs,
    outliers, distinct counts and quantiles by sketch, per group with --group-col.
    """
    from uda.cli.progress import progress_bar
    from uda.quality.table.profile import profile_table
    from uda.quality.table.schema import infer_schema, schema_toml
    from uda.store import atomic_write_text

    keys = [k.strip() for k in key.split(",") if k.strip()] if key else None
    with progress_bar("quality") as update:
        rep, used, prof = profile_table(table, schema=schema, time_col=time_col, key=keys, group_col=group_col,
                                        needs=needs, batch_rows=batch_rows,
                                        progress=lambda done, total: update("scan", done, total or done))
    if write_schema:
        inferred = infer_schema(rep, used)
        Path(write_schema).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(Path(write_schema), schema_toml(inferred, comment=f"inferred by uda run quality from {table}\n"
                                                                             f"{rep['rows']} rows"))
        rep["schema_written"] = write_schema
    if plot:
        plot_profile(prof, rep, Path(plot))
        rep["plot"] = plot
    if as_json:
        click.echo(json.dumps(rep, default=float))
        return
    _print(rep, top)
    for k in ("schema_written", "plot"):
        if k in rep:
            click.echo(f"written: {rep[k]}")
