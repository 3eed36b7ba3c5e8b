"""Generation: determinism across workers and chunk sizes, atomicity, verify, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from uda.cli.main import cli
from uda.errors import UserError
from uda.generate import generate
from uda.scales import PRESETS, resolve_scale
from uda.store import open_dataset, verify


def _checksums(manifest):
    return {name: t["checksum"] for name, t in manifest["tables"].items()}


def test_same_seed_same_checksums_across_workers_and_chunk_sizes(tmp_path):
    scale = resolve_scale("tiny", days=3)
    a = generate(tmp_path / "a", scale=scale, seed=3, workers=1)
    b = generate(tmp_path / "b", scale=scale, seed=3, workers=2, chunk_rows=2000)
    c = generate(tmp_path / "c", scale=scale, seed=3, workers=2, chunk_rows=5000)
    assert len(b["tables"]["traffic"]["files"]) > len(a["tables"]["traffic"]["files"])
    assert _checksums(a) == _checksums(b) == _checksums(c)
    d = generate(tmp_path / "d", scale=scale, seed=4, workers=2)
    assert _checksums(d)["traffic"] != _checksums(a)["traffic"]


def test_manifest_and_layout(tiny_dataset):
    ds = open_dataset(tiny_dataset)
    m = json.loads((tiny_dataset / "manifest.json").read_text())
    scale = PRESETS["tiny"]
    assert m["tables"]["traffic"]["rows"] == scale.traffic_rows
    assert m["tables"]["water"]["rows"] == scale.water_rows
    for name, t in m["tables"].items():
        assert t["rows"] == sum(f["rows"] for f in t["files"]), name
        assert t["checksum"].startswith("mh1-")
    traffic = ds.read("traffic")
    # one sensor's series never spans files
    per_file = [set(pq.read_table(p, columns=["sensor_id"])["sensor_id"].to_pylist()) for p in ds.files("traffic")]
    assert sum(len(s) for s in per_file) == len(set().union(*per_file)) == scale.sensors
    assert traffic["ts"].dt.minute().unique().sort().to_list() == list(range(0, 60, 5))
    assert verify(tiny_dataset) == []


def test_files_read_back_to_the_content_checksums(tiny_dataset):
    # the generated tables are written with their own encodings (uda.generate.ENCODINGS) and
    # hashed before they reach the disk: reading the files gives back the recorded content
    from uda.generate import ENCODINGS
    from uda.kernels.checksum import finish_checksum, table_hash_sum
    from uda.store import schema_dict

    ds = open_dataset(tiny_dataset)
    m = json.loads((tiny_dataset / "manifest.json").read_text())
    for name, enc in ENCODINGS.items():
        files = ds.files(name)
        total, rows = 0, 0
        for f in files:
            tab = pq.read_table(f)
            total += table_hash_sum(tab)
            rows += tab.num_rows
            assert set(enc["use_dictionary"]) | set(enc["column_encoding"]) <= set(tab.column_names), name
        assert finish_checksum(total, rows, schema_dict(pq.read_schema(files[0]))) == m["tables"][name]["checksum"]
        meta = pq.ParquetFile(files[0]).metadata.row_group(0)
        encodings = {meta.column(j).path_in_schema: meta.column(j).encodings for j in range(meta.num_columns)}
        for col in enc["column_encoding"]:
            assert "DELTA_BINARY_PACKED" in encodings[col], (name, col)


def test_keys_are_shared_across_tables(tiny_dataset):
    ds = open_dataset(tiny_dataset)
    links = ds.read("links")
    assert set(ds.read("sensors")["link_id"]) <= set(links["link_id"])
    assert set(ds.read("taps")["station_id"]) <= set(ds.read("stations")["station_id"])
    assert set(ds.read("water")["site_id"]) == set(ds.read("water_sites")["site_id"])
    districts = set(ds.read("districts")["district_id"])
    for t in ("links", "zones", "stations", "water_sites", "sensors"):
        assert set(ds.read(t)["district_id"]) <= districts


def _corrupt_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_verify_detects_corruption(tmp_path):
    out = tmp_path / "ds"
    generate(out, scale=resolve_scale("tiny", days=1), seed=1, workers=1)
    runner = CliRunner()
    assert runner.invoke(cli, ["verify", str(out)]).exit_code == 0
    part = open_dataset(out).files("traffic")[0]
    original = part.read_bytes()
    _corrupt_byte(part)
    res = runner.invoke(cli, ["verify", str(out)])
    assert res.exit_code == 2 and "traffic" in res.output and "Traceback" not in res.output
    part.write_bytes(original)
    (out / "manifest.json").write_text("{not json")
    res = runner.invoke(cli, ["verify", str(out)])
    assert res.exit_code == 2 and "manifest.json" in res.output


def test_verify_refuses_paths_outside_the_dataset(tmp_path):
    out = tmp_path / "ds"
    generate(out, scale=resolve_scale("tiny", days=1), seed=1, workers=1)
    m = json.loads((out / "manifest.json").read_text())
    m["tables"]["nodes"]["files"][0]["path"] = "../../etc/passwd"
    (out / "manifest.json").write_text(json.dumps(m))
    res = CliRunner().invoke(cli, ["verify", str(out)])
    assert res.exit_code == 2 and "outside the dataset" in res.output
    with pytest.raises(Exception, match="outside the dataset"):
        open_dataset(out).files("nodes")


@pytest.mark.parametrize(("args", "message"), [
    (["--days", "0"], "--days 0 is impossible"),
    (["--sensors", "-5"], "--sensors -5 is impossible"),
    (["--scale", "huge"], "Invalid value for '--scale'"),
    (["--chunk-rows", "10"], "--chunk-rows 10 is too small"),
    (["--workers", "0"], "--workers 0 is impossible"),
    (["--seed", "-1"], "--seed -1 is negative"),
    (["--start", "yesterday"], "--start 'yesterday' is not a date"),
    (["--tables", "traffic,weather"], "unknown table(s) weather"),
])
def test_bad_parameters(tmp_path, args, message):
    out = tmp_path / "ds"
    res = CliRunner().invoke(cli, ["generate", "--out", str(out), *args])
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ds.tmp")]


def test_existing_output_is_kept_without_force(tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    runner = CliRunner()
    res = runner.invoke(cli, ["generate", "--out", str(out), "--days", "1"])
    assert res.exit_code == 2 and "already exists" in res.output
    res = runner.invoke(cli, ["generate", "--out", str(out), "--days", "1", "--force"])
    assert res.exit_code == 2 and "not a uda dataset" in res.output
    assert (out / "precious.txt").read_text() == "keep me"


def test_force_replaces_a_dataset(tmp_path):
    out = tmp_path / "ds"
    runner = CliRunner()
    assert runner.invoke(cli, ["generate", "--out", str(out), "--days", "1", "--seed", "1"]).exit_code == 0
    res = runner.invoke(cli, ["generate", "--out", str(out), "--days", "2", "--seed", "1", "--force", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["params"]["days"] == 2
    assert open_dataset(out).params["days"] == 2
    assert verify(out) == []


@pytest.mark.parametrize("where", ["file", "proc"])
def test_unwritable_output(tmp_path, where):
    if where == "file":
        f = tmp_path / "a-file"
        f.write_text("x")
        out = f / "ds"
    else:
        out = "/proc/uda-cannot-write-here"
    res = CliRunner().invoke(cli, ["generate", "--out", str(out), "--days", "1"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert res.output.startswith("Error: ")


def test_killed_generation_leaves_no_dataset(tmp_path):
    out = tmp_path / "ds"
    script = textwrap.dedent(f"""
        import os
        from uda.generate import generate
        from uda.scales import resolve_scale
        def die(stage, done, total):
            os._exit(9)  # killed half-way: no cleanup runs
        generate({str(out)!r}, scale=resolve_scale("tiny", days=2), seed=1, workers=1, chunk_rows=2000, progress=die)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=os.environ)
    assert proc.returncode == 9, proc.stderr
    assert not out.exists()
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".ds.tmp")]
    assert leftovers, "the partial temporary folder should be visible for inspection"
    res = CliRunner().invoke(cli, ["verify", str(leftovers[0])])
    assert res.exit_code == 2 and "not a uda dataset" in res.output
    assert CliRunner().invoke(cli, ["verify", str(out)]).exit_code == 2


def test_a_failing_chunk_stops_the_queued_ones(tmp_path, monkeypatch):
    """An error in one chunk (a full disk, a bug) or Ctrl-C ends the run without generating
    the chunks still queued, and leaves no dataset behind."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from uda import generate as G
    from uda.synth.plan import Plan, chunk_ranges

    calls, stopping = [], threading.Event()
    real = Plan.traffic_chunk

    def chunk(self, a, b):
        calls.append(a)
        if len(calls) == 2:
            msg = "disk full"
            raise OSError(msg)
        if len(calls) > 2:
            stopping.wait(timeout=60)  # held until the run shuts its pool down
        return real(self, a, b)

    class Pool(ThreadPoolExecutor):
        def shutdown(self, wait=True, *, cancel_futures=False):
            stopping.set()
            super().shutdown(wait=wait, cancel_futures=cancel_futures)

    monkeypatch.setattr(Plan, "traffic_chunk", chunk)
    monkeypatch.setattr(G, "ThreadPoolExecutor", Pool)
    scale = resolve_scale("tiny", days=2)
    with pytest.raises(OSError, match="disk full"):
        generate(tmp_path / "d", scale=scale, seed=1, workers=1, chunk_rows=1000, tables=("traffic",))
    n_chunks = len(chunk_ranges(scale.sensors, max(1, 1000 // (scale.days * 288))))
    assert n_chunks > 5 and len(calls) == 3, (n_chunks, calls)  # the one running when it failed
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("enabled", [True, False])
def test_the_garbage_collector_is_left_as_found(tmp_path, enabled):
    """generate() turns cyclic collection off while it runs and restores the caller's setting."""
    import gc

    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        generate(tmp_path / "ds", scale=resolve_scale("tiny", days=1), seed=1, workers=1, tables=("traffic",))
        assert gc.isenabled() is enabled
        with pytest.raises(UserError):
            generate(tmp_path / "bad", scale=resolve_scale("tiny", days=1), seed=1, tables=("nope",))
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


def test_chunks_share_one_read_only_timestamp_column(tmp_path):
    """Traffic chunks of equal size reuse one timestamp array; the values are each chunk's own."""
    from uda.city import build_city
    from uda.contract import TRAFFIC_INTERVAL_S
    from uda.synth.plan import Plan
    from uda.synth.traffic import SLOTS

    scale = resolve_scale("tiny", days=2)
    plan = Plan(build_city(scale, 1), 1)
    a, b, c = plan.traffic_chunk(0, 3), plan.traffic_chunk(3, 6), plan.traffic_chunk(6, 8)
    ts_a, ts_b = a["ts"].chunk(0), b["ts"].chunk(0)
    assert ts_a.buffers()[1].address == ts_b.buffers()[1].address
    step = TRAFFIC_INTERVAL_S * 1000
    expect = [plan.start_ms + (i % (2 * SLOTS)) * step for i in range(2 * 2 * SLOTS)]
    assert c["ts"].cast("int64").to_pylist() == expect
    assert a["ts"].cast("int64").to_pylist()[: 2 * SLOTS] == expect[: 2 * SLOTS]
    with pytest.raises(ValueError, match="read-only"):
        plan.timestamps(TRAFFIC_INTERVAL_S, 2 * SLOTS, 3)[0] = 0
