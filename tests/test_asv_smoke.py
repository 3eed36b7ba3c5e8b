"""asv benchmarks cannot rot: every module is discovered, and (in CI) every benchmark runs once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
#: The full quick run takes several minutes on 2 cores (Numba compile benchmarks included),
#: so it runs in CI (.ci/run sets this) and on demand, not in every local test run.
FULL_RUN = os.environ.get("UDA_ASV_SMOKE") == "1"


def _discover() -> list:
    from asv_runner.discovery import disc_benchmarks

    sys.path.insert(0, str(REPO))
    try:
        return list(disc_benchmarks(str(BENCH), ignore_import_errors=False))
    finally:
        sys.path.remove(str(REPO))


def test_every_asv_module_has_benchmarks_and_scripts_have_none():
    names = [b.name for b in _discover()]
    modules = {n.split(".")[0] for n in names}
    expected = {p.stem for p in BENCH.glob("asv_*.py")} - {"asv_data"}
    assert expected <= modules, f"no benchmarks found in {sorted(expected - modules)}"
    scripts = sorted(m for m in modules if m.startswith("bench_"))
    assert not scripts, f"bench scripts look like asv benchmarks to asv: {scripts}"
    kinds = {n.split(".")[-1].split("_")[0] for n in names}
    assert {"time", "peakmem", "track"} <= kinds


def test_asv_config_and_benchmarks_check_clean():
    out = subprocess.run([sys.executable, "-m", "asv", "check", "--python=same"], cwd=REPO,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "No problems found" in out.stdout


@pytest.mark.skipif(not FULL_RUN, reason="set UDA_ASV_SMOKE=1 (as .ci/run does) for the full quick run")
def test_quick_run_of_every_benchmark():
    subprocess.run([sys.executable, "-m", "asv", "machine", "--yes"], cwd=REPO, check=True,
                   capture_output=True, timeout=120)
    out = subprocess.run([sys.executable, "-m", "asv", "run", "--quick", "--python=same", "--dry-run",
                          "--show-stderr"], cwd=REPO, capture_output=True, text=True, timeout=3600)
    log = out.stdout + out.stderr
    failed = [line for line in log.splitlines() if line.rstrip().endswith("failed")]
    assert out.returncode == 0 and not failed, "\n".join(failed) or log[-3000:]


def test_first_of_takes_the_first_location_that_imports_and_raises_the_last_error():
    """asv runs today's benchmarks against commits from before a module moved (bench/asv_data.first_of)."""
    import json

    sys.path.insert(0, str(REPO))
    try:
        from bench.asv_data import first_of, water_parameters
    finally:
        sys.path.remove(str(REPO))
    assert first_of("uda.no_such_module:X", "json:dumps") is json.dumps
    assert first_of("json:no_such_name", "json:loads", "json:dumps") is json.loads
    with pytest.raises(ModuleNotFoundError, match="uda.nope"):
        first_of("json:no_such_name", "uda.nope:X")
    with pytest.raises(AttributeError, match="no_such_name"):
        first_of("uda.nope:X", "json:no_such_name")
    from uda.contract import WATER_PARAMETERS

    assert water_parameters() == WATER_PARAMETERS  # the new location first
