"""Standardise and utilisation one group at a time: the merged small results equal whole-table answers."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from uda.cli.main import cli
from uda.contract import SPECS, TABLE_DEFECTS, start_ms_of
from uda.generate import generate
from uda.kernels.checksum import table_hash_sum
from uda.quality.feeds import parse_arrow, parse_polars, read_parse_arrow
from uda.quality.rules import FLAGS, _is_sorted, concat_parts, daily_levels, detect_group
from uda.scales import resolve_scale
from uda.store import open_dataset
from uda.tasks.standardise import _context, _groups
from uda.tasks.standardise import standardise as standardise_all
from uda.tasks.utilisation import DETECTORS, GroupReducer, score

_DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def drifting(tmp_path_factory):
    """Defects with many drifting and skewed sensors, so the second (drift) pass has work to do."""
    root = tmp_path_factory.mktemp("stream")
    prof = root / "rates.toml"
    prof.write_text("[defects]\nmissing = 0.05\nduplicate = 0.02\nstuck = 0.02\nclock_skew = 0.2\ndrift = 0.3\n"
                    "late = 0.02\nspike = 0.01\nbad_reference = 0.02\n")
    out = root / "ds"
    generate(out, scale=resolve_scale("tiny", sensors=120, days=4, cards=1500, water_sites=20), seed=5, workers=2,
             defects=str(prof))
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 3), st.integers(0, 3), st.integers(0, 2)), max_size=12))
def test_is_sorted_is_lexsort_identity(rows):
    cols = [np.array([r[j] for r in rows], dtype=bool if j == 0 else np.int64) for j in range(4)]
    order = np.lexsort(tuple(reversed(cols)))
    assert _is_sorted(*cols) == bool((order == np.arange(len(rows))).all())


def _same_parse(a: dict, b: dict) -> bool:
    keys = ("key", "ref", "ts", "received", "values", "raw", "direction", "syntax_ok", "unit_ok", "conform")
    return all(np.array_equal(a[k], b[k], equal_nan=a[k].dtype.kind == "f") and a[k].dtype == b[k].dtype
               for k in keys) and a["findings"] == b["findings"]


def test_dask_reads_parse_as_polars_files(drifting):
    """Each feed file read by pyarrow (the Dask engine's task), whole or row group by row group,
    parses to the arrays Polars gives for the whole file, also when a text column arrives
    dictionary-encoded."""
    import pyarrow.parquet as pq

    ctx = _context(open_dataset(drifting))
    formats = set()
    for ff in ctx.files:
        ref = parse_polars(ff)
        assert _same_parse(ref, read_parse_arrow(ff)), ff.rel
        pf = pq.ParquetFile(ff.path)
        parts = [parse_arrow(ff, pf.read_row_group(i)) for i in range(pf.num_row_groups)]
        assert _same_parse(ref, concat_parts(parts) | {"findings": parts[0]["findings"]}), ff.rel
        t = pq.read_table(ff.path)
        text = [f.name for f in t.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
        if text:
            coded = pq.read_table(ff.path, read_dictionary=text)
            assert pa.types.is_dictionary(coded.schema.field(text[0]).type)
            assert _same_parse(ref, parse_arrow(ff, coded)), ff.rel
        formats.add(ff.time_format)
        assert ref["syntax_ok"].any()
    assert {"native", "epoch_s", "dmy_local", "iso_utc"} <= formats  # text, number and native times covered


def test_daily_levels_are_medians_per_key_and_day(drifting):
    ds = open_dataset(drifting)
    ctx = _context(ds)
    (table, _), files = next((k, v) for k, v in _groups(ctx.files).items() if k[0] == "traffic")
    g = detect_group([parse_polars(ff) for ff in files], table, district=files[0].district,
                     lookup=ctx.lookups[table], period=ctx.period)
    got = daily_levels(g, start_ms=ctx.start_ms)
    f = g["flags"]
    ok = ~(f["flag_syntax"] | f["flag_range"] | f["flag_duplicate"] | f["flag_stuck"])
    v = g["values"][ok, SPECS[table].values.index(SPECS[table].drift)]
    k = g["key"][ok]
    d = (g["ts"][ok] - g["skew"][ok] - ctx.start_ms) // _DAY_MS
    good = np.isfinite(v)
    ref = {}
    for kk, dd, vv in zip(k[good], d[good], v[good], strict=True):
        ref.setdefault((int(kk), int(dd)), []).append(vv)
    assert len(got["key"]) == len(ref) > 0
    for kk, dd, lv in zip(got["key"], got["day"], got["level"], strict=True):
        assert lv == np.median(ref[(int(kk), int(dd))])


def _whole(table, clean, rejects):
    return clean, rejects


def test_group_results_merge_into_the_whole_table_answer(drifting):
    """Hashes, flag counts and detector scores from merged group results equal those computed on
    the concatenated tables (the drifted groups' second pass included)."""
    res = standardise_all(drifting, write=False, reducer=_whole)
    rep = res["report"]
    assert rep["drift_factors"]["traffic"] > 0 and rep["flags"]["traffic"]["flag_drift"] > 0
    tables: dict[str, list[pa.Table]] = {}
    for (table, _), (clean, rejects) in sorted(res["reduced"].items()):
        tables.setdefault(table, []).append(clean)
        tables.setdefault(f"{table}_rejects", []).append(rejects)
    for name, parts in tables.items():
        assert res["hashes"][name] == sum(table_hash_sum(t) for t in parts) % (1 << 64), name
    for table in ("traffic", "water", "taps"):
        whole = pa.concat_tables(tables[f"{table}_rejects"], promote_options="default")
        for flag in FLAGS:
            n = int(np.asarray(whole[flag]).sum())
            if flag in tables[table][0].column_names:
                n += sum(int(np.asarray(t[flag]).sum()) for t in tables[table])
            assert n == rep["flags"][table][flag], (table, flag)

    ds = open_dataset(drifting)
    p = ds.params
    start, days = start_ms_of(p["start"]), int(p["days"])
    city = {name: np.sort(ds.read(name)[col].to_numpy().astype(np.int64))
            for name, col in (("sensors", "sensor_id"), ("stations", "station_id"), ("water_sites", "site_id"))}
    city_keys = {"traffic": city["sensors"], "water": city["water_sites"], "taps": city["stations"]}
    reducer = GroupReducer(city, city_keys, start, days, False)
    reduced = {k: {"detect": reducer.detections(k[0], c, r)} for k, (c, r) in res["reduced"].items()}
    _, by_table = score(reduced, ds.scan("defects"), city_keys=city_keys, start=start, days=days)
    truth = ds.read("defects")

    def codes(key, ts):
        return np.unique((key.astype(np.int64) << 36) | (ts.astype(np.int64) - start + (1 << 33)))

    for table in ("traffic", "water", "taps"):
        rows = pa.concat_tables(tables[table] + tables[f"{table}_rejects"], promote_options="default")
        spec = SPECS[table]
        ok = ~np.asarray(rows["flag_syntax"].fill_null(False))
        key = np.asarray(rows[spec.key]).astype(np.int64)
        ts = np.asarray(rows["ts"].cast(pa.int64())) - np.asarray(rows["skew_ms"]).astype(np.int64)
        for kind in TABLE_DEFECTS[table]:
            t = truth.filter((truth["table"] == table) & (truth["type"] == kind))
            true = codes(t["key"].to_numpy(), t["ts"].cast(int).to_numpy())
            if DETECTORS[kind] is None:  # every expected (key, interval) that no parsed row covers
                step = spec.interval_s * 1000
                slots = np.arange(days * _DAY_MS // step, dtype=np.int64) * step + start
                ids = city_keys[table]
                expected = codes(np.repeat(ids, slots.size), np.tile(slots, ids.size))
                got = codes(key[ok], ((ts[ok] - start + step // 2) // step) * step + start)
                pred = np.setdiff1d(expected, got, assume_unique=True)
            else:
                sel = ok & np.asarray(rows[DETECTORS[kind]].fill_null(False))
                pred = codes(key[sel], ts[sel])
            tp = np.intersect1d(pred, true).size
            assert by_table[table][kind]["tp"] == tp, (table, kind)
            assert by_table[table][kind]["fp"] == pred.size - tp, (table, kind)
            assert by_table[table][kind]["fn"] == true.size - tp, (table, kind)
    assert by_table["traffic"]["missing"]["tp"] > 0


def test_no_write_leaves_the_dataset_alone(drifting):
    before = sorted(p.name for p in drifting.iterdir())
    res = CliRunner().invoke(cli, ["run", "standardise", "--data", str(drifting), "--no-write", "--json"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in drifting.iterdir()) == before and not (drifting / "clean").exists()
    rep = json.loads(res.output)
    assert rep["counts"]["traffic"] and rep["flags"]["traffic"]["flag_drift"] > 0


@pytest.mark.parametrize("long_run", [3, 5000])
def test_daily_levels_padded_and_looped_agree_with_median(long_run):
    """Short runs go through the padded sort, one very long run through the loop: both are np.median."""
    rng = np.random.default_rng(long_run)
    key = np.r_[np.ones(long_run, np.int64), np.repeat(np.arange(2, 6), 4)]
    n = key.size
    ts = np.r_[np.arange(long_run), np.tile(np.arange(4), 4)].astype(np.int64) * 1_000 + 3 * _DAY_MS * (key % 2)
    values = rng.random((n, 3)) * 100
    values[5, 1] = np.nan  # not finite: ignored
    grp = {"table": "traffic", "key": key, "ts": ts, "skew": np.zeros(n, np.int64), "values": values,
           "flags": {name: np.zeros(n, bool) for name in FLAGS}}
    got = daily_levels(grp, start_ms=0)
    j = SPECS["traffic"].values.index(SPECS["traffic"].drift)
    for kk, dd, lv in zip(got["key"], got["day"], got["level"], strict=True):
        sel = (key == kk) & (ts // _DAY_MS == dd) & np.isfinite(values[:, j])
        assert lv == np.median(values[sel, j])
    assert got["key"].tolist() == [1, 2, 3, 4, 5]


def test_a_killed_standardise_leaves_no_litter(drifting, tmp_path):
    """The temporary folder of a killed standardise (its process gone) goes on the next run."""
    import shutil

    from uda.tasks.standardise import standardise

    copy = tmp_path / "d"
    shutil.copytree(drifting, copy)
    stale = copy / ".clean.tmp-999999999-deadbeef"  # no such process
    stale.mkdir()
    (stale / "part.parquet").write_bytes(b"half written")
    standardise(open_dataset(copy), engine="polars", write=True)
    assert not stale.exists()
    assert (copy / "clean" / "manifest.json").is_file()


@pytest.mark.parametrize("foreign", ["folder", "file"])
def test_a_clean_it_did_not_write_is_refused_and_kept(drifting, tmp_path, foreign):
    """A clean/ without a manifest is someone else's: one line, exit 2, nothing deleted."""
    import shutil

    copy = tmp_path / "d"
    shutil.copytree(drifting, copy, ignore=shutil.ignore_patterns("clean"))
    clean = copy / "clean"
    if foreign == "folder":
        clean.mkdir()
        (clean / "notes.txt").write_text("mine")
    else:
        clean.write_text("mine")
    res = CliRunner().invoke(cli, ["run", "standardise", "--data", str(copy)])
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1, res.output
    assert "not the output of uda run standardise" in res.output and "--no-write" in res.output
    assert (clean / "notes.txt" if foreign == "folder" else clean).read_text() == "mine"
