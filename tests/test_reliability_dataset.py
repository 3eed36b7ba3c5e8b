"""Hostile input and faults (issue 16), datasets: damaged files, clean/ and manifests are
refused in one line by verify and run, nothing is changed; a killed generation's litter is removed."""

from __future__ import annotations

import pytest
from cli_checks import assert_one_line_error, poll, run_cli, snapshot

# ---------------------------------------------------------------- datasets for damage tests

@pytest.fixture(scope="module")
def feeds_dataset(tmp_path_factory):
    """Two days of the tiny city published as department feeds, standardised (clean/ written)."""
    from uda.generate import generate
    from uda.scales import resolve_scale
    from uda.synth.profiles import resolve_profile
    from uda.tasks.standardise import standardise

    out = tmp_path_factory.mktemp("rel") / "feeds"
    generate(out, scale=resolve_scale("tiny", days=2), seed=3, workers=2, defects=resolve_profile("realistic"))
    standardise(out)
    assert (out / "clean" / "manifest.json").is_file()
    return out


@pytest.fixture
def feeds_copy(feeds_dataset, tmp_path):
    import shutil

    dest = tmp_path / "ds"
    shutil.copytree(feeds_dataset, dest)
    return dest


def _flip_byte(path, at: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0x10
    path.write_bytes(bytes(data))


# ---------------------------------------------------------------- 2: verify covers clean/

def test_verify_reports_a_deleted_clean_file(feeds_copy):
    victim = sorted((feeds_copy / "clean" / "traffic").glob("*.parquet"))[0]
    victim.unlink()
    res = run_cli(["verify", feeds_copy])
    assert res.exit_code == 2 and "clean/traffic" in res.stderr and "missing" in res.stderr
    assert "Traceback" not in res.output
    res = run_cli(["run", "flow", "--data", feeds_copy])
    assert_one_line_error(res, f"clean/traffic/{victim.name}", "missing")


def test_verify_reports_a_changed_clean_byte(feeds_copy):
    victim = sorted((feeds_copy / "clean" / "traffic").glob("*.parquet"))[0]
    _flip_byte(victim)
    for quick in ([], ["--quick"]):
        res = run_cli(["verify", feeds_copy, *quick])
        assert res.exit_code == 2 and "clean/traffic" in res.stderr and "checksum" in res.stderr


def test_verify_reports_clean_without_manifest(feeds_copy):
    (feeds_copy / "clean" / "manifest.json").unlink()
    assert_one_line_error(run_cli(["verify", feeds_copy]), "clean/ exists but has no manifest.json")


def test_verify_of_an_intact_standardised_dataset(feeds_dataset):
    res = run_cli(["verify", feeds_dataset])
    assert res.exit_code == 0 and "clean/ matches clean/manifest.json" in res.output


# ---------------------------------------------------------------- 11: a run checks files on open

def _dataset_copy(src, tmp_path):
    import shutil

    ds = tmp_path / "ds"
    shutil.copytree(src, ds)
    return ds


@pytest.mark.parametrize(("table", "args"), [("traffic", ["flow"]), ("taps", ["route", "--od", "taps"])])
def test_run_refuses_a_truncated_raw_file(tiny_dataset, tmp_path, table, args):
    from uda.store import open_dataset

    ds = _dataset_copy(tiny_dataset, tmp_path)
    rel = open_dataset(ds).table(table)["files"][0]["path"]
    victim = ds / rel
    victim.write_bytes(victim.read_bytes()[:-100])
    before = snapshot(ds)
    assert_one_line_error(run_cli(["run", *args, "--data", ds]), rel, "bytes")
    assert snapshot(ds) == before


def test_run_refuses_a_same_size_file_with_another_footer(tiny_dataset, tmp_path):
    """A file replaced by another Parquet file of the same length (10 rows, padded)."""
    import pyarrow.parquet as pq

    from uda.store import open_dataset

    ds = _dataset_copy(tiny_dataset, tmp_path)
    rel = open_dataset(ds).table("traffic")["files"][0]["path"]
    victim = ds / rel
    size = victim.stat().st_size
    pq.write_table(pq.read_table(victim).slice(0, 10), victim)
    data = victim.read_bytes()
    victim.write_bytes(data[:4] + b"\0" * (size - len(data)) + data[4:])  # the footer stays last
    assert victim.stat().st_size == size
    assert_one_line_error(run_cli(["run", "flow", "--data", ds]), rel, "does not match the manifest")


def test_page_checksums_are_written_and_verify_checks_them(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from uda.store import write_part

    t = pa.table({"a": list(range(20000)), "b": [float(i) / 7 for i in range(20000)]})
    part = write_part(tmp_path, "x.parquet", t)
    p = tmp_path / part.path
    _flip_byte(p, 0.4)
    with pytest.raises(OSError, match="CRC"):
        pq.read_table(p, page_checksum_verification=True)


# ---------------------------------------------------------------- 6: malformed manifests

def _edit_manifest(ds, edit) -> None:
    import json

    m = json.loads((ds / "manifest.json").read_text())
    out = edit(m)
    (ds / "manifest.json").write_text(out if isinstance(out, str) else json.dumps(m))


def _first(m):
    return next(iter(m["tables"].values()))


@pytest.mark.parametrize(("edit", "needle"), [
    (lambda m: _first(m).__setitem__("files", ["a.parquet", "b.parquet"]), "file 1 must be an object"),
    (lambda m: _first(m)["files"][0].__setitem__("path", 7), "bad path"),
    (lambda m: _first(m)["files"][0].__setitem__("path", "city/a\0b.parquet"), "bad path"),
    (lambda m: _first(m)["files"][0].__setitem__("path", "/etc/passwd"), "bad path"),
    (lambda m: _first(m)["files"][0].__setitem__("path", "../../etc/passwd"), "outside the dataset"),
    (lambda m: _first(m)["files"][0].__setitem__("rows", -1), "rows and bytes"),
    (lambda m: _first(m)["files"][0].__setitem__("sha256", None), "sha256"),
    (lambda m: _first(m).__setitem__("schema", "oops"), "schema must be"),
    (lambda m: _first(m).__setitem__("rows", "many"), "rows must be"),
    (lambda m: m.__setitem__("format_version", 99), "format_version 99"),
    (lambda m: m.__setitem__("format_version", "1"), "format_version '1'"),
    (lambda m: m.__setitem__("params", [1]), "'params' must be an object"),
    (lambda m: "[" * 200_000 + "]" * 200_000, "nested deeper"),
    (lambda m: '{"format": "uda-dataset", "tables": {}, "x": ' + "[" * 200_000 + "]" * 200_000 + "}",
     "nested deeper"),
    (lambda m: '{"format": "uda-dataset", "format_version": 1, "tables": {}, "x": ' + "[" * 20 + "]" * 20 + "}",
     "nested deeper"),
])
def test_malformed_manifest_is_one_line_for_verify_and_run(tiny_dataset, tmp_path, edit, needle):
    ds = _dataset_copy(tiny_dataset, tmp_path)
    _edit_manifest(ds, edit)
    before = snapshot(ds)
    assert_one_line_error(run_cli(["verify", ds]), needle)
    assert_one_line_error(run_cli(["run", "route", "--data", ds]), needle)
    assert_one_line_error(run_cli(["verify", ds, "--quick"]), needle)
    assert snapshot(ds) == before


def test_oversized_manifest_is_refused_before_reading(tiny_dataset, tmp_path, monkeypatch):
    import uda.store.manifest

    ds = _dataset_copy(tiny_dataset, tmp_path)
    monkeypatch.setattr(uda.store.manifest, "MAX_MANIFEST_BYTES", 1000)
    assert_one_line_error(run_cli(["verify", ds]), "more than a manifest can be")


def test_malformed_clean_manifest(feeds_copy):
    _edit_manifest(feeds_copy / "clean", lambda m: m.__setitem__("format_version", 2))
    res = run_cli(["verify", feeds_copy])
    assert res.exit_code == 2 and "clean/" in res.stderr and "format_version 2" in res.stderr
    assert_one_line_error(run_cli(["run", "flow", "--data", feeds_copy]), "format_version 2")


# ---------------------------------------------------------------- 7, 10: generate --out

def test_generate_with_a_300_character_folder_name(tmp_path):
    assert_one_line_error(run_cli(["generate", "--out", tmp_path / ("x" * 300)]), "at most 200 bytes")
    assert list(tmp_path.iterdir()) == []


def test_a_killed_generation_leaves_a_temp_folder_that_the_next_one_removes(tmp_path):
    import signal
    import subprocess
    import sys

    out = tmp_path / "ds"
    proc = subprocess.Popen([sys.executable, "-m", "uda.cli.main", "generate", "--scale", "small",
                             "--out", str(out), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert poll(lambda: any(p.name.startswith(".ds.tmp-") for p in tmp_path.iterdir()), 60)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    litter = [p for p in tmp_path.iterdir() if p.name.startswith(".ds.tmp-")]
    assert litter and not out.exists()
    # an unrelated temp folder of a live process is kept
    import os

    live = tmp_path / f".ds.tmp-{os.getppid()}-0123abcd"
    live.mkdir()
    res = run_cli(["generate", "--out", out, "--sensors", "10", "--days", "1", "--tables", "traffic", "--json"])
    assert res.exit_code == 0, res.output
    assert "removed 1 temporary folder(s) left by killed generations" in res.stderr
    assert litter[0].name in res.stderr
    assert not litter[0].exists() and live.exists()
    assert run_cli(["verify", out]).exit_code == 0
