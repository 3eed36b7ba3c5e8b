"""``uda generate``: build a seeded synthetic city and its sensor data."""

from __future__ import annotations

import json

import click

from uda.cli.progress import progress_bar
from uda.contract import GENERATED_TABLES
from uda.scales import PRESETS


@click.command()
@click.option("--scale", "scale_name", type=click.Choice(list(PRESETS)), default="tiny", show_default=True,
              help="Size preset (see docs/datasets.md for rows and bytes).")
@click.option("--seed", type=int, default=42, show_default=True, help="Random seed; same seed and scale give identical tables.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Dataset folder to create [default: datasets/<scale>].")
@click.option("--workers", type=int, default=None, help="Parallel chunk writers [default: CPU count].")
@click.option("--chunk-rows", type=int, default=2_000_000, show_default=True,
              help="Target rows per chunk and per file; bounds memory.")
@click.option("--force", is_flag=True, help="Replace an existing dataset at --out.")
@click.option("--tables", default=",".join(GENERATED_TABLES), show_default=True,
              help="Sensor tables to generate (comma-separated); city and truth tables are always written.")
@click.option("--sensors", type=int, default=None, help="Override: traffic sensors.")
@click.option("--days", type=int, default=None, help="Override: days of data.")
@click.option("--stations", type=int, default=None, help="Override: transit stations (target; snapping may merge a few).")
@click.option("--lines", type=int, default=None, help="Override: transit lines.")
@click.option("--cards", type=int, default=None, help="Override: smart cards.")
@click.option("--water-sites", type=int, default=None, help="Override: water monitoring sites.")
@click.option("--districts", type=int, default=None, help="Override: districts.")
@click.option("--start", default=None, help="Override: first day (YYYY-MM-DD) [default: 2026-03-02, a Monday].")
@click.option("--defects", default="none", show_default=True,
              help="Department feeds with defects: none (canonical tables only), realistic, severe, "
                   "or a PROFILE.toml of rates (see docs/utilisation.md).")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest summary as JSON.")
def generate(scale_name: str, seed: int, out: str | None, workers: int | None, chunk_rows: int, force: bool,
             tables: str, sensors, days, stations, lines, cards, water_sites, districts, start, defects: str,
             as_json: bool) -> None:
    """Build the city for SCALE and SEED and write its data as a dataset folder.

    The folder holds city/ (roads, zones, districts, sensors, stations, river),
    raw/ (traffic, taps, water), truth/ (weather, incidents, pollution events, trips)
    and manifest.json, written last; the folder appears only when complete.
    With --defects other than none, raw/ holds each district's feeds under its own
    standard and truth/ the canonical tables and every injected defect.
    """
    from uda.errors import UserError
    from uda.generate import generate as run_generate
    from uda.scales import resolve_scale
    from uda.synth.profiles import resolve_profile

    scale = resolve_scale(scale_name, sensors=sensors, days=days, stations=stations, lines=lines, cards=cards,
                          water_sites=water_sites, districts=districts, start=start)
    if seed < 0:
        msg = f"--seed {seed} is negative; use a seed >= 0"
        raise UserError(msg)
    profile = resolve_profile(defects)
    out = out or f"datasets/{scale_name}"
    from uda.store import remove_stale_temp_folders, split_location

    if split_location(out)[0] is None:
        removed = remove_stale_temp_folders(split_location(out)[1])
        if removed:
            click.echo(f"removed {len(removed)} temporary folder(s) left by killed generations of {out}: "
                       + ", ".join(p.name for p in removed), err=True)
    with progress_bar(f"generate {scale.name}") as update:
        manifest = run_generate(out, scale=scale, seed=seed, workers=workers, chunk_rows=chunk_rows, force=force,
                                tables=tuple(t.strip() for t in tables.split(",") if t.strip()), progress=update,
                                defects=profile)
    summary = {name: {"rows": t["rows"], "bytes": t["bytes"], "files": len(t["files"]), "checksum": t["checksum"]}
               for name, t in manifest["tables"].items()}
    if as_json:
        click.echo(json.dumps({"out": str(out), "seconds": manifest["run"]["seconds"], "params": manifest["params"],
                               "tables": summary}))
        return
    from rich.table import Table

    from uda.cli.output import wide_console

    tab = Table(title=f"{out} ({scale.name}, seed {seed}, {manifest['run']['seconds']:.1f} s)")
    for col in ("table", "rows", "MB", "files"):
        tab.add_column(col, justify="left" if col == "table" else "right")
    for name, t in summary.items():
        tab.add_row(name, f"{t['rows']:,}", f"{t['bytes'] / 1e6:,.2f}", str(t["files"]))
    wide_console().print(tab)
