"""Datasets written and read through fsspec URLs (``memory://``, ``file://``)."""

from __future__ import annotations

import fsspec
import polars as pl
import pytest

from uda.generate import generate
from uda.scales import resolve_scale
from uda.store import open_dataset, verify
from uda.tasks.base import compare_answers


@pytest.fixture
def memfs():
    fs = fsspec.filesystem("memory")
    yield fs
    if fs.exists("/uda-test"):
        fs.rm("/uda-test", recursive=True)


def test_generate_verify_and_read_through_memory_url(memfs, tiny_dataset):
    url = "memory://uda-test/ds"
    m = generate(url, scale=resolve_scale("tiny"), seed=1, workers=2)
    assert memfs.exists("/uda-test/ds/manifest.json")
    assert verify(url) == []
    local = open_dataset(tiny_dataset)
    remote = open_dataset(url)
    assert m["tables"]["traffic"]["checksum"] == local.table("traffic")["checksum"]
    a = remote.scan("traffic").group_by("sensor_id").agg(pl.col("flow").sum()).sort("sensor_id").collect()
    b = local.scan("traffic").group_by("sensor_id").agg(pl.col("flow").sum()).sort("sensor_id").collect()
    assert a.equals(b)
    d = remote.dask("water", columns=["site_id", "ph"]).groupby("site_id").ph.mean().compute().sort_index()
    e = local.read("water").group_by("site_id").agg(pl.col("ph").mean()).sort("site_id")["ph"].to_numpy()
    assert d.to_numpy() == pytest.approx(e, rel=1e-6)


def test_a_task_runs_on_a_remote_dataset(memfs, tiny_dataset):
    from uda.tasks.route import run

    url = "memory://uda-test/ds2"
    generate(url, scale=resolve_scale("tiny"), seed=1, workers=2)
    a = run(tiny_dataset, engine="polars")
    b = run(url, engine="dask")
    assert compare_answers(a.answer, b.answer, rtol=1e-9) == []


def test_remote_corruption_and_existing_output(memfs):
    url = "memory://uda-test/ds3"
    generate(url, scale=resolve_scale("tiny", days=1), seed=1, workers=1)
    with pytest.raises(Exception, match="already exists"):
        generate(url, scale=resolve_scale("tiny", days=1), seed=1, workers=1)
    part = open_dataset(url).files("water")[0]
    data = bytearray(memfs.cat_file(part))
    data[len(data) // 2] ^= 0xFF
    memfs.pipe_file(part, bytes(data))
    assert any("raw/water" in p for p in verify(url))
    generate(url, scale=resolve_scale("tiny", days=1), seed=1, workers=1, force=True)
    assert verify(url) == []


def test_file_url_is_local(tmp_path):
    generate(f"file://{tmp_path}/ds", scale=resolve_scale("tiny", days=1), seed=1, workers=1)
    assert (tmp_path / "ds" / "manifest.json").is_file()
    assert verify(f"file://{tmp_path}/ds") == []


def test_unknown_protocol_is_a_clear_error():
    with pytest.raises(Exception, match="fsspec backend"):
        open_dataset("nosuchproto://bucket/ds")


def test_results_written_and_read_through_memory_urls(memfs, tiny_dataset, tmp_path):
    """bench, report, compare and a task's --out go through fsspec URLs too."""
    import json

    from click.testing import CliRunner
    from test_harness_cli import _suite

    from uda.cli.main import cli

    runner = CliRunner()
    out = "memory://uda-test/results"
    runs = []
    for _ in range(2):
        # two warm repeats: compare needs two measurements per side to compare anything
        r = runner.invoke(cli, ["bench", "--suite", str(_suite(tmp_path)), "--out", out, "--json",
                                "--repeats", "2"])
        assert r.exit_code == 0, r.output
        runs.append(json.loads(r.stdout)["run_id"])
    for run_id in runs:
        assert json.loads(memfs.cat_file(f"/uda-test/results/{run_id}.json"))["run_id"] == run_id
        assert memfs.exists(f"/uda-test/results/{run_id}.html")
    first = f"{out}/{runs[0]}.json"
    r = runner.invoke(cli, ["report", first, "--out", "memory://uda-test/report"])
    assert r.exit_code == 0, r.output
    assert r.output.split()[-1] == f"memory://uda-test/report/{runs[0]}.md"  # after the headline
    assert memfs.exists(f"/uda-test/report/{runs[0]}.md")
    r = runner.invoke(cli, ["compare", first, f"{out}/{runs[1]}.json", "--json"])
    assert r.exit_code in (0, 1), r.output  # 1 would only flag a slowdown, not a read problem
    assert json.loads(r.stdout)["cases"]
    r = runner.invoke(cli, ["compare", first, f"{out}/nosuch.json"])
    assert r.exit_code == 2 and "does not exist" in r.output
    r = runner.invoke(cli, ["run", "flow", "--data", str(tiny_dataset), "--models", "last",
                            "--horizons", "1", "--out", "memory://uda-test/flow/flow.json", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(memfs.cat_file("/uda-test/flow/flow.json")) == json.loads(r.stdout)
    r = runner.invoke(cli, ["run", "water", "--data", str(tiny_dataset), "--out", "memory://uda-test/water",
                            "--json"])
    assert r.exit_code == 0, r.output
    files = json.loads(r.stdout)["files"]
    assert files and all(p.startswith("memory://uda-test/water/") for p in files.values())
    assert all(memfs.exists(p.removeprefix("memory:/")) for p in files.values())
    r = runner.invoke(cli, ["run", "utilisation", "--data", str(tiny_dataset), "--no-write", "--no-quality",
                            "--out", "memory://uda-test/util"])
    assert r.exit_code == 0, r.output
    assert "memory://uda-test/util/utilisation.json" in r.output
    assert json.loads(memfs.cat_file("/uda-test/util/utilisation.json"))["funnel"]
