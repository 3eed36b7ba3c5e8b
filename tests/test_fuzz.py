"""Property-based fuzzing of every input surface (issue 16).

Hostile manifests, suites, results files, TNTP files, wide CSVs, LibCity files, water
tables and option values: every command must end in exit 0 (or 1 for ``uda compare``'s
"regression found") or exit 2 with one ``Error:`` line, never a traceback or an
"internal error", within a time bound, without changing any existing file. Examples are
few and bounded so the whole file runs in well under a minute.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from uda.cli.main import cli

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

DATA = Path(__file__).parent / "data"
#: Seconds any one command may take on hostile input (tiny inputs: a second or two is normal).
TIME_BOUND_S = 30.0
FEW = settings(max_examples=15, deadline=None, derandomize=True, database=None,
               suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SOME = settings(FEW, max_examples=40)


def _digest(paths: list[Path]) -> dict[str, str]:
    out = {}
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for p in files:
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def check_cli(args: list, *, protect: list[Path] = (), ok_codes: tuple[int, ...] = (0,)):
    """Invoke ``uda args``; the outcome must be clean (see the module docstring)."""
    before = _digest(list(protect))
    t0 = time.monotonic()
    res = CliRunner().invoke(cli, [str(a) for a in args])
    elapsed = time.monotonic() - t0
    assert elapsed < TIME_BOUND_S, (args, elapsed)
    assert res.exception is None or isinstance(res.exception, SystemExit), (args, repr(res.exception))
    assert "Traceback" not in res.output and "internal error" not in res.stderr, (args, res.stderr)
    assert res.exit_code in (*ok_codes, 2), (args, res.exit_code, res.output[-500:])
    if res.exit_code == 2:
        err = res.stderr.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("Error: "), (args, res.stderr)
    assert _digest(list(protect)) == before, f"{args} changed an existing file"
    return res


# ---------------------------------------------------------------- strategies

scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
json_values = st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                           max_leaves=12)
hostile_text = st.sampled_from(["", " ", "zzz", "nan", "NaN", "inf", "-inf", "1e400", "-1", "0", "1e-320",
                                "\x00", "é", "9" * 40, "1,2", '"', "2024-13-45", "null", "[]", "{}"])
floats_any = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, -0.0, 1e308, -1e308, 5e-324])


def _paths(obj, prefix=()):
    """Every (path, value) inside a JSON object, for mutation."""
    yield prefix, obj
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:3]):
            yield from _paths(v, (*prefix, i))


@st.composite
def mutated(draw, base: dict):
    """``base`` with one to three values replaced, deleted or retyped."""
    obj = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        spots = [p for p, _ in _paths(obj) if p]
        if not spots:
            break
        path = draw(st.sampled_from(spots))
        parent = obj
        for k in path[:-1]:
            parent = parent[k]
        action = draw(st.sampled_from(["replace", "delete", "nan"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "nan":
            parent[path[-1]] = draw(st.sampled_from([float("nan"), float("inf"), -1, "x", [], {}]))
        else:
            parent[path[-1]] = draw(json_values)
    return obj


# ---------------------------------------------------------------- manifests

@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    from uda.generate import generate
    from uda.scales import resolve_scale

    out = tmp_path_factory.mktemp("fuzz") / "ds"
    generate(out, scale=resolve_scale("tiny", days=1, sensors=10), seed=2, workers=1)
    return out


def _with_manifest(ds: Path, text: str, args: list):
    original = (ds / "manifest.json").read_bytes()
    data = [p for p in ds.rglob("*") if p.is_file() and p.name != "manifest.json"]
    try:
        (ds / "manifest.json").write_text(text)
        check_cli(args, protect=data)
    finally:
        (ds / "manifest.json").write_bytes(original)


@SOME
@given(data=st.data())
def test_fuzz_manifest_verify(small_dataset, data):
    base = json.loads((small_dataset / "manifest.json").read_text())
    m = data.draw(mutated(base) | json_values.map(lambda v: v))
    text = data.draw(st.sampled_from([json.dumps(m), json.dumps(m)[: len(json.dumps(m)) // 2]]))
    _with_manifest(small_dataset, text, ["verify", small_dataset, "--quick"])


@FEW
@given(data=st.data())
def test_fuzz_manifest_run(small_dataset, data):
    base = json.loads((small_dataset / "manifest.json").read_text())
    m = data.draw(mutated(base))
    _with_manifest(small_dataset, json.dumps(m), ["run", "route", "--data", small_dataset, "--max-iter", "2",
                                                  "--sites", "1"])


# ---------------------------------------------------------------- suites

VALID_SUITE = {"name": "s", "seed": 1, "repeats": 2, "timeout_s": 60, "memory_mb": 500,
               "cases": [{"task": "route", "engines": ["polars", "dask"], "scales": ["tiny", "small:days=2"],
                          "schedulers": ["threads"], "options": {"algorithm": "bfw"}}]}


@SOME
@given(suite=mutated(VALID_SUITE))
def test_fuzz_suite_values(tmp_path_factory, suite):
    """A suite is accepted (and expands) or refused with a UserError; nothing else."""
    from uda.errors import UserError
    from uda.harness.runner.suite import expand_suite, load_suite

    p = tmp_path_factory.mktemp("suite") / "s.json"
    p.write_text(json.dumps(suite))
    try:
        cases = expand_suite(load_suite(p))
    except UserError as exc:
        assert "\n" not in str(exc)
        return
    assert cases and all(c.timeout_s > 0 and c.memory_mb > 0 and c.repeats >= 0 for c in cases)


@FEW
@given(text=st.text(max_size=200) | st.sampled_from(["repeats = \"three\"\n[[cases]]\ntask='route'\nscales=['tiny']",
                                                      "cases = [" * 500, "x = 1e999"]))
def test_fuzz_suite_toml_text(tmp_path_factory, text):
    from uda.errors import UserError
    from uda.harness.runner.suite import expand_suite, load_suite

    p = tmp_path_factory.mktemp("suite") / "s.toml"
    p.write_text(text)
    try:
        expand_suite(load_suite(p))
    except UserError as exc:
        assert "\n" not in str(exc)


# ---------------------------------------------------------------- results files

def _results() -> dict:
    from uda.harness.results import SCHEMA, SCHEMA_VERSION

    cases = []
    for task in ("route", "flow"):
        warm = [{"wall_s": w, "cpu_s": w, "peak_rss_bytes": 2**24, "rows_per_s": 100.0} for w in (0.5, 0.52, 0.49)]
        cases.append({"id": f"{task}/polars/tiny", "task": task, "engine": "polars", "scheduler": None,
                      "scale": "tiny", "status": "ok", "cold": dict(warm[0]), "warm": warm, "rows_in": 100,
                      "quality": {"q": 0.5}, "limits": {"cold": "cached"}, "dataset": "tiny-seed1",
                      "summary": {"wall_s_median": 0.5, "wall_s_min": 0.49, "wall_s_max": 0.52, "cpu_s_median": 0.5,
                                  "peak_rss_bytes": 2**24, "n_warm": 3, "rows_per_s": 200.0, "cold_wall_s": 0.5}})
    return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "run_id": "r1", "created_utc": "2026-01-01T00:00:00",
            "machine": {"cpu_model": "x", "memory_bytes": 2**30}, "git": {"commit": "abc"}, "suite": {"name": "s"},
            "datasets": {"tiny-seed1": {"scale": "tiny", "params": {"sensors": 24, "days": 7},
                                        "tables": {"traffic": {"rows": 100, "bytes": 1000}}}},
            "cases": cases}


@SOME
@given(b=mutated(_results()))
def test_fuzz_results_compare(tmp_path_factory, b):
    d = tmp_path_factory.mktemp("res")
    a_path, b_path = d / "a.json", d / "b.json"
    a_path.write_text(json.dumps(_results()))
    b_path.write_text(json.dumps(b, allow_nan=True))
    check_cli(["compare", a_path, b_path], protect=[a_path, b_path], ok_codes=(0, 1))
    check_cli(["size", "--sensors", "50", "--days", "2", "--results", b_path], protect=[a_path, b_path])


@FEW
@given(b=mutated(_results()))
def test_fuzz_results_report(tmp_path_factory, b):
    d = tmp_path_factory.mktemp("rep")
    b_path = d / "b.json"
    b_path.write_text(json.dumps(b, allow_nan=True))
    check_cli(["report", b_path], protect=[b_path])


# ---------------------------------------------------------------- TNTP files

BRAESS = DATA / "tntp" / "Braess-Example"


@st.composite
def mutated_lines(draw, text: str):
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["token", "drop", "dup", "garbage"]))
        if action == "drop":
            lines.pop(i)
        elif action == "dup":
            lines.insert(i, lines[i])
        elif action == "garbage":
            lines[i] = draw(st.text(max_size=30))
        else:
            parts = lines[i].split()
            if parts:
                parts[draw(st.integers(0, len(parts) - 1))] = draw(hostile_text)
                lines[i] = "\t".join(parts)
        if not lines:
            break
    return "\n".join(lines) + "\n"


@SOME
@given(data=st.data())
def test_fuzz_tntp(tmp_path_factory, data):
    d = tmp_path_factory.mktemp("tntp")
    for f in BRAESS.glob("*.tntp"):
        shutil.copy(f, d / f.name)
    victim = data.draw(st.sampled_from(sorted(d.glob("*.tntp"))))
    victim.write_text(data.draw(mutated_lines(victim.read_text())))
    check_cli(["run", "route", "--tntp", d, "--max-iter", "20"], protect=[d])


# ---------------------------------------------------------------- option values

@SOME
@given(days=floats_any, sensors=st.integers(-5, 10**12))
def test_fuzz_size_options(tmp_path_factory, days, sensors):
    d = tmp_path_factory.mktemp("size")
    r = d / "r.json"
    r.write_text(json.dumps(_results()))
    check_cli(["size", "--sensors", sensors, "--days", repr(days), "--results", r], protect=[r])


@FEW
@given(option=st.sampled_from(["--trip-rate", "--beta", "--gap"]), value=floats_any)
def test_fuzz_route_options(small_dataset, option, value):
    check_cli(["run", "route", "--data", small_dataset, option, repr(value), "--max-iter", "2", "--sites", "1"],
              protect=[small_dataset])


# ---------------------------------------------------------------- wide CSV, LibCity, water tables
# Owned by the flow/water issue: these assert only the clean-outcome contract.

@st.composite
def mutated_csv(draw, text: str, keep_header: bool = True):
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(1 if keep_header else 0, len(lines) - 1))
        cells = lines[i].split(",")
        j = draw(st.integers(0, len(cells) - 1))
        cells[j] = draw(hostile_text)
        lines[i] = ",".join(cells)
    if draw(st.booleans()):
        col = draw(st.integers(1, len(lines[0].split(",")) - 1))
        value = draw(st.sampled_from(["inf", "", "nan", "zzz"]))
        lines = [lines[0]] + [",".join(value if k == col else c for k, c in enumerate(ln.split(",")))
                              for ln in lines[1:]]
    return "\n".join(lines) + "\n"


@FEW
@given(data=st.data())
def test_fuzz_wide_csv(tmp_path_factory, data):
    d = tmp_path_factory.mktemp("wide")
    src = (DATA / "flow" / "wide_ts.csv").read_text()
    w = d / "w.csv"
    w.write_text(data.draw(mutated_csv(src)))
    check_cli(["run", "flow", "--wide", w, "--interval", "1h", "--models", "last,ha", "--horizons", "1"],
              protect=[w])


@FEW
@given(data=st.data())
def test_fuzz_libcity(tmp_path_factory, data):
    d = tmp_path_factory.mktemp("libcity")
    for f in (DATA / "flow" / "libcity").iterdir():
        shutil.copy(f, d / f.name)
    victim = d / data.draw(st.sampled_from(["TOY.dyna", "TOY.geo", "TOY.rel"]))
    victim.write_text(data.draw(mutated_csv(victim.read_text())))
    check_cli(["run", "flow", "--libcity", d, "--models", "last,ha", "--horizons", "1"], protect=[d])


def _water_table() -> str:
    import numpy as np

    rng = np.random.default_rng(0)
    n = 24 * 8
    rows = ["time,pH,DO,Temperature,Turbidity"]
    for i in range(n):
        day, hour = divmod(i, 24)
        rows.append(f"2026-03-{2 + day:02d} {hour:02d}:00:00,{7 + 0.1 * rng.standard_normal():.3f},"
                    f"{9 + 0.3 * rng.standard_normal():.3f},{12 + 2 * np.sin(hour / 24 * 6.28):.3f},"
                    f"{3 + abs(rng.standard_normal()):.3f}")
    return "\n".join(rows) + "\n"


@FEW
@given(data=st.data())
def test_fuzz_water_table(tmp_path_factory, data):
    d = tmp_path_factory.mktemp("water")
    t = d / "t.csv"
    t.write_text(data.draw(mutated_csv(_water_table())))
    check_cli(["run", "water", "--table", t, "--no-plot", "--out", d / "o"], protect=[t])
