"""Regenerate the committed reference signatures (uda/data/realism/*.json) from the real tables.

Usage::

    python bench/realism_signatures.py [--real ../shared/data/real] [--out uda/data/realism]

Reads the real tables documented in ``<real>/README.md`` (this script may read them; the
package and its tests use only the committed JSON):

- ``scats``: SCATS Boroondara 2006, 140 detectors, 15-min volumes (whole missing days as nulls);
- ``pedestrian``: Melbourne hourly pedestrian counts, 55 sensors, ``-1`` read as missing;
- ``nab_speed``, ``nab_occupancy``: NAB realTraffic freeway series, irregular ~5 min,
  binned to 5 min; ``nab_traveltime``: the two travel-time series binned to 10 min (they
  are sampled more sparsely). The NAB series are unrelated sensors without locations, so
  no neighbour statistics;
- ``neon_<parameter>``: NEON stream water quality at 3 sites, 15 min, one signature per
  parameter (temperature, dissolved oxygen, turbidity: a diel cycle under seasonal drift,
  a biological diel cycle, storm spikes; nitrate and conductance look like temperature);
  the three sites are far apart, so no neighbour statistics either.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from uda.io.long import read_long, stack_panels  # noqa: E402
from uda.io.wide import read_wide  # noqa: E402
from uda.realism.reference import SIGNATURES  # noqa: E402
from uda.realism.signature import signature  # noqa: E402

NEON_PARAMS = ("temperature", "dissolved_oxygen", "turbidity")


def _nab(real: Path, prefix: str, interval: str):
    files = sorted((real / "nab_realtraffic").glob(f"{prefix}_*.csv"))
    return stack_panels([read_long(f, interval=interval, irregular=True) for f in files]), files


def build(real: Path) -> dict[str, tuple[dict, str]]:
    """Signature and a source description per reference name."""
    out: dict[str, tuple[dict, str]] = {}
    p = read_wide(real / "scats_boroondara_2006.parquet", interval="15min")
    out["scats"] = (signature(p, name="SCATS Boroondara 2006 (15-min volumes)"),
                    "scats_boroondara_2006.parquet, --interval 15min")
    p = read_wide(real / "pedestrian_melbourne.parquet", interval="1h", missing=(-1,))
    out["pedestrian"] = (signature(p, name="Melbourne pedestrians 2021-22 (hourly)"),
                         "pedestrian_melbourne.parquet, --interval 1h --missing -1")
    for key, prefix, interval, label in (("nab_speed", "speed", "5min", "NAB freeway speed (5 min)"),
                                         ("nab_occupancy", "occupancy", "5min", "NAB freeway occupancy (5 min)"),
                                         ("nab_traveltime", "TravelTime", "10min", "NAB travel time (10 min)")):
        p, files = _nab(real, prefix, interval)
        out[key] = (signature(p, name=label, neighbours=0),
                    f"nab_realtraffic/{{{','.join(f.name for f in files)}}}, long, "
                    f"--interval {interval} --irregular --neighbours 0")
    for param in NEON_PARAMS:
        p = read_long(real / "neon_water_quality.parquet", interval="15min", id_column="siteID",
                      value_column=param)
        out[f"neon_{param}"] = (signature(p, name=f"NEON streams, {param.replace('_', ' ')} (15 min)",
                                          neighbours=0),
                                f"neon_water_quality.parquet, long, --id-col siteID --value-col {param} "
                                "--interval 15min --neighbours 0")
    return out


def _round(obj, digits: int = 4):
    """Floats to ``digits`` significant digits (smaller, stable committed files)."""
    if isinstance(obj, dict):
        return {k: _round(v, digits) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_round(v, digits) for v in obj]
    if isinstance(obj, float):
        return float(f"{obj:.{digits}g}")
    return obj


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", type=Path, default=HERE.parent.parent / "shared" / "data" / "real")
    ap.add_argument("--out", type=Path, default=SIGNATURES)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    for key, (sig, source) in build(args.real).items():
        sig = _round({**sig, "source": source})
        (args.out / f"{key}.json").write_text(json.dumps(sig, indent=1) + "\n")
        s = sig["stats"]
        print(f"{key:28s} series {sig['series_used']:3d}  acf_1 {s['acf_1']['median']}  "
              f"ratio_tod_15 {s['ratio_tod_15']['median']}")
    print(f"done in {time.perf_counter() - t:.1f} s -> {args.out}")


if __name__ == "__main__":
    main()
