"""Common checks over the task registry, in the spirit of scikit-learn's ``estimator_checks``.

Every task registered in :data:`uda.tasks.registry.TASKS` must pass every check here, on a
tiny generated dataset (one per set of dataset overrides, built once per session):

- its registry entry resolves (run, command, usage rules) and agrees with ``run``'s signature;
- Polars and Dask give the same answer, and a rerun repeats it exactly;
- a bad option is one ``UserError`` line, and ``uda bench`` rejects it with exit 2 before any case;
- a run whose writes fail part way leaves no half-written file and no temporary file behind.

It also checks what is derived from the registry: ``uda run``'s commands, the built-in
suites, asv's quality tracks and the usage rules. A new task gets all of it by registering.
"""

from __future__ import annotations

import errno
import inspect
import json
import math
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from uda.errors import UserError
from uda.generate import generate
from uda.scales import resolve_scale
from uda.tasks.base import compare_answers
from uda.tasks.registry import SUITES, TASKS, Option, Task, get, in_suite, register, resolve

NAMES = list(TASKS)
REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- data and runs, shared per session

def _generate(out: Path, overrides: str) -> None:
    """``tiny`` seed 1 with a task's ``dataset`` overrides (``defects=...`` or scale overrides)."""
    kw = dict(p.split("=", 1) for p in overrides.split(",") if p)
    defects = kw.pop("defects", "none")
    scale = resolve_scale("tiny", **{k.replace("-", "_"): int(v) for k, v in kw.items()})
    generate(out, scale=scale, seed=1, workers=2, defects=defects)


@pytest.fixture(scope="session")
def task_data(tiny_dataset, tmp_path_factory):
    """``task name -> dataset folder``: the session's tiny dataset, or a tiny one with the
    task's overrides, generated once per distinct overrides."""
    made: dict[str, Path] = {"": tiny_dataset}

    def data(name: str) -> Path:
        overrides = TASKS[name].dataset
        if overrides not in made:
            out = tmp_path_factory.mktemp("registry") / "tiny"
            _generate(out, overrides)
            made[overrides] = out
        return made[overrides]

    return data


@pytest.fixture(scope="session")
def results(task_data):
    """``(task, engine, n) -> TaskResult``: run ``n`` (0, 1, ...) of a task, each run once a session.

    Runs leave the dataset as generated (``Task.keep_data_options``), so every check sees the same data.
    """
    done: dict[tuple[str, str, int], object] = {}

    def result(name: str, engine: str, n: int = 0):
        key = (name, engine, n)
        if key not in done:
            t = TASKS[name]
            scheduler = "threads" if engine == "dask" else None
            done[key] = t(task_data(name), engine=engine, scheduler=scheduler, **t.keep_data_options())
        return done[key]

    return result


def _loadable(name: str) -> bool:
    try:
        TASKS[name].load()
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------- the registry entries


@pytest.mark.parametrize("name", NAMES)
def test_entry_resolves_and_matches_run(name):
    t = TASKS[name]
    run = t.load()
    assert callable(run)
    params = inspect.signature(run).parameters
    assert "engine" in params and "scheduler" in params
    cmd = resolve(t.command)
    assert isinstance(cmd, click.Command)
    assert {"engine", "scheduler"} <= {p.name for p in cmd.params}, "use engine_option in the command"
    assert set(t.suites) <= set(SUITES)
    assert not t.usage or set(t.usage) == set(t.tables), "a usage rule for every table the task reads"
    for path in t.usage.values():
        rule = resolve(path)
        assert callable(rule) and rule.columns, f"{path} needs @reads(...)"
    names = t.option_names()
    assert names and not set(names) & {"data", "engine", "scheduler"}
    for o in t.options:  # declared options: as run takes them
        assert o.name in params, f"{name}: {o.name} is not an argument of run"
        assert params[o.name].default == o.default and isinstance(o.default, o.type)
    t.check_options(dict(t.bench_options))
    t.check_options(t.keep_data_options())


def test_registry_rejects_a_second_task_of_the_same_name_and_unknown_suites():
    with pytest.raises(ValueError, match="already registered"):
        register(TASKS["route"])
    with pytest.raises(ValueError, match="unknown suite"):
        register(Task(name="nope", run="x:y", command="x:z", tables=(), quality="q", suites=("nightly",)))
    assert "nope" not in TASKS
    with pytest.raises(UserError, match="unknown task 'nope'; known: route"):
        get("nope")


# ---------------------------------------------------------------- engines agree, reruns repeat


@pytest.mark.parametrize("name", NAMES)
def test_polars_and_dask_agree(name, results):
    polars, dask = results(name, "polars"), results(name, "dask")
    assert polars.answer, f"{name} returned an empty answer: nothing to compare"
    assert compare_answers(polars.answer, dask.answer) == []
    assert polars.engine == "polars" and dask.engine == "dask"
    assert polars.task == dask.task == name
    assert polars.rows_in == dask.rows_in > 0, "rows_in: the input rows the task read, the same on both engines"


@pytest.mark.parametrize("name", NAMES)
def test_rerun_repeats_exactly(name, results):
    first, again = results(name, "polars").answer, results(name, "polars", 1).answer
    assert compare_answers(first, again, rtol=0.0, atol=0.0) == []


@pytest.mark.parametrize("name", NAMES)
def test_headline_quality_is_reported(name, results):
    q = results(name, "polars").quality
    assert TASKS[name].quality in q, f"{name}: quality has no {TASKS[name].quality!r}; it has {sorted(q)}"
    assert isinstance(q[TASKS[name].quality], int | float)
    assert not math.isinf(float(q[TASKS[name].quality]))


# ---------------------------------------------------------------- a bad option is one line, exit 2


@pytest.mark.parametrize("name", NAMES)
def test_unknown_option_is_one_user_error_line(name, tmp_path):
    t = TASKS[name]
    with pytest.raises(UserError) as err:
        t(tmp_path / "not-even-read", engine="polars", no_such_option=1)
    text = str(err.value)
    assert "\n" not in text and f"task {name} has no option no_such_option" in text
    assert ", ".join(t.option_names()) in text  # names what it does take
    with pytest.raises(UserError, match=re.escape("no options 'a\\nb', no_such_option; its options: ")):
        t.check_options({"no_such_option": 1, "a\nb": 2})


@pytest.mark.parametrize("name", [n for n in NAMES if TASKS[n].options])
def test_declared_option_of_the_wrong_type_is_one_user_error_line(name):
    o = TASKS[name].options[0]
    bad = "yes" if o.type is not str else 1
    shown = re.escape(repr(bad))
    with pytest.raises(UserError, match=f"option {o.name} of task {name} must be {o.type.__name__}, got .* {shown}$"):
        TASKS[name].check_options({o.name: bad})
    with pytest.raises(UserError, match="must be int, got bool True"):
        Option("n", int, 1, "a count").check(name, True)


@pytest.mark.parametrize("name", NAMES)
def test_uda_bench_rejects_a_bad_option_with_exit_2_before_any_case(name, tmp_path):
    from uda.cli.main import cli

    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({"cases": [{"task": name, "scales": ["tiny"], "options": {"bogus_opt": 1}}]}))
    out = tmp_path / "results"
    res = CliRunner().invoke(cli, ["bench", "--suite", str(suite), "--out", str(out)])
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.stderr
    assert f"case 1: task {name} has no option bogus_opt" in lines[0]
    assert not out.exists() or not any(out.iterdir()), "nothing may run or be written"


# ---------------------------------------------------------------- outputs are atomic


class _HalfFile:
    """A file opened for writing whose first write stores half its bytes and fails, as on a full disk."""

    def __init__(self, fh, disk: _DiskFull, path: Path):
        self._fh, self._disk, self._path = fh, disk, path

    def write(self, data):
        self._fh.write(data[: len(data) // 2])
        self._fh.flush()
        self._disk.truncated.append(self._path)
        raise OSError(errno.ENOSPC, "No space left on device (injected by the test)")

    def __getattr__(self, name):
        return getattr(self._fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._fh.close()


class _DiskFull:
    """Patch the writers uda uses so that write number ``fail_at`` under ``root`` leaves half a
    file and raises ``OSError(ENOSPC)``, as a full disk would; only counts writes when
    ``fail_at`` is 0. Python's ``open`` (and so ``Path.write_text``), and the Arrow and Polars
    writers given a path, are covered; writes outside ``root`` (caches) are left alone."""

    def __init__(self, monkeypatch, root: Path, fail_at: int = 0):
        import builtins
        import io

        import polars as pl
        import pyarrow.parquet as pq

        self.root, self.fail_at, self.calls, self.truncated = root.resolve(), fail_at, 0, []
        self._lock = threading.Lock()
        real_open = builtins.open

        def fake_open(file, mode="r", *args, **kwargs):
            fh = real_open(file, mode, *args, **kwargs)
            if any(c in mode for c in "wxa") and self._fails(file):
                return _HalfFile(fh, self, Path(file))
            return fh

        monkeypatch.setattr(builtins, "open", fake_open)
        monkeypatch.setattr(io, "open", fake_open)
        monkeypatch.setattr(pq, "write_table", self._wrap(pq.write_table, lambda a, k: k.get("where", a[1])))
        for meth in ("write_parquet", "write_csv"):
            monkeypatch.setattr(pl.DataFrame, meth, self._wrap(
                getattr(pl.DataFrame, meth), lambda a, k: k.get("file", a[1] if len(a) > 1 else None)))

    def _fails(self, path) -> bool:
        """Count a write to ``path`` if it is under the root; whether it is the one to fail."""
        if not isinstance(path, str | os.PathLike) or not Path(path).resolve().is_relative_to(self.root):
            return False
        with self._lock:
            self.calls += 1
            return self.calls == self.fail_at

    def _wrap(self, real, where):
        def write(*args, **kwargs):
            path = where(args, kwargs)
            fail = self._fails(path)
            out = real(*args, **kwargs)
            if fail:
                with open(path, "r+b") as fh:
                    fh.truncate(Path(path).stat().st_size // 2)
                self.truncated.append(Path(path))
                raise OSError(errno.ENOSPC, "No space left on device (injected by the test)")
            return out

        return write


def _files(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*") if p.is_file()}


def _writes(t: Task) -> str | None:
    """How a task writes: ``"out"`` (a results folder), ``"dataset"`` (into its dataset) or None."""
    if "out" in t.option_names():
        return "out"
    if t.keep_data_options():
        return "dataset"
    return None


@pytest.mark.parametrize("name", NAMES)
def test_a_failed_write_leaves_nothing_half_written(name, task_data, tmp_path, monkeypatch):
    t = TASKS[name]
    how = _writes(t)
    if how is None:
        pytest.skip(f"{name}'s run writes no files (its command writes its JSON with store.atomic_write)")
    source = task_data(name)

    def attempt(tag: str, fail_at: int) -> tuple[Path, Path, _DiskFull]:
        data, out = tmp_path / tag / "data", tmp_path / tag / "out"
        shutil.copytree(source, data)
        options = {"out": out} if how == "out" else {}
        if "plot" in t.option_names():
            options["plot"] = False  # matplotlib writes through its own file objects
        with monkeypatch.context() as m:
            disk = _DiskFull(m, tmp_path / tag, fail_at)
            if fail_at:
                with pytest.raises((OSError, UserError)):
                    t(data, engine="polars", **options)
            else:
                t(data, engine="polars", **options)
        return data, out, disk

    data, out, dry = attempt("complete", 0)
    written = _files(out if how == "out" else data) - (set() if how == "out" else _files(source))
    assert dry.calls >= 2 and written, f"{name} wrote nothing to check"
    for fail_at in sorted({2, dry.calls}):
        data, out, disk = attempt(f"fail-{fail_at}", fail_at)
        assert disk.truncated, "the injected failure hit no file"
        left = [p for p in disk.truncated if p.exists()]
        assert not left, f"{name} left half-written files after write {fail_at} of {dry.calls} failed: {left}"
        after = _files(out) if how == "out" and out.exists() else set()
        if how == "dataset":
            after = _files(data) - _files(source)
            assert not after, f"{name} left files in its dataset after a failed write: {sorted(after)[:5]}"
        assert after <= written, f"{name} left temporary files: {sorted(after - written)}"


# ---------------------------------------------------------------- what is derived from the registry


def test_uda_run_has_a_command_per_task_and_quality():
    from uda.cli.run import COMMANDS, run

    assert list(COMMANDS) == [*TASKS, "quality"]
    assert run.help == f"Run one analytic task ({', '.join([*TASKS, 'quality'])})."
    for name, t in TASKS.items():
        assert COMMANDS[name] == t.command


def test_engine_option_is_the_engine_choice_and_the_scheduler():
    from uda.cli.run import engine_option
    from uda.engines import ENGINES, SCHEDULER_HELP

    @click.command()
    @engine_option("What the engine runs.")
    def cmd(engine, scheduler):
        click.echo(f"{engine} {scheduler}")

    engine, scheduler = cmd.params
    assert engine.name == "engine" and list(engine.type.choices) == list(ENGINES)
    assert engine.default == "polars" and engine.show_default and engine.help == "What the engine runs."
    assert scheduler.name == "scheduler" and scheduler.default is None and scheduler.help == SCHEDULER_HELP
    assert CliRunner().invoke(cmd, ["--engine", "dask", "--scheduler", "sync"]).output == "dask sync\n"
    assert CliRunner().invoke(cmd, ["--engine", "spark"]).exit_code == 2


def test_builtin_suites_are_the_registry_s_tasks():
    from uda.harness import suites

    loadable = [n for n in NAMES if _loadable(n)]
    for suite in SUITES:
        spec = suites.BUILTIN[suite]()
        tasks = [c["task"] for c in spec["cases"] if c["task"] != "generate"]
        expected = [t.name for t in in_suite(suite) if t.name in loadable]
        assert list(dict.fromkeys(tasks)) == expected, suite
        for case in spec["cases"]:
            if case["task"] in TASKS:
                t = TASKS[case["task"]]
                assert case["options"] == dict(t.bench_options)
                assert all(s.endswith(t.dataset) for s in case.get("scales", [])), case


def test_asv_tracks_each_task_s_headline_quality():
    sys.path.insert(0, str(REPO))
    try:
        import bench.asv_tasks as asv
    finally:
        sys.path.remove(str(REPO))
    assert asv.QUALITY == {n: t.quality for n, t in TASKS.items()}
    assert set(asv.TASKS) <= set(TASKS)


def test_usage_rules_come_from_the_registry():
    from uda.tasks import usage

    rules = usage.rules()
    assert list(rules) == [n for n, t in TASKS.items() if t.usage]
    assert usage.columns_needed("traffic") == ["sensor_id", "speed", "flow"]
    assert usage.columns_needed("taps") == ["station_id"]
    assert usage.columns_needed("water")[0] == "site_id" and len(usage.columns_needed("water")) > 1
    with pytest.raises(KeyError, match="no task has a usage rule for table 'weather'"):
        usage.columns_needed("weather")


def test_uda_run_help_imports_no_task_code():
    code = ("import sys; from uda.cli.main import cli\n"
            "try:\n    cli.main(['run', '--help'], prog_name='uda')\nexcept SystemExit:\n    pass\n"
            "heavy = sorted(m for m in ('numpy', 'polars', 'numba', 'dask', 'pyarrow', 'uda.tasks.base')"
            " if m in sys.modules)\nprint('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1] == "HEAVY []"
