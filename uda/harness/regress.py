"""Regression check of the core kernels between two revisions, by instruction counts under callgrind.

Why instruction counts: on a shared 2-core machine the wall time of identical code moves
by tens of per cent between runs, while the number of instructions a kernel executes
(valgrind's callgrind, hash seed and thread count fixed) repeats to a few parts per
million. A kernel that does 15 % more work executes about 15 % more instructions on
every run, so a fixed threshold separates it from noise with a wide margin. See
``docs/maintainers.md`` for the measured false-alarm and detection rates.

How: each revision is extracted with ``git archive`` into a cache folder keyed by its
commit (the working tree, the index and the worktree list are never touched). The probe
(:mod:`uda.harness.regress_probe`, the current one for both revisions, so both get the
same inputs) first runs natively to compile the revision's kernels into a Numba cache,
then under ``valgrind --tool=callgrind --instr-atstart=no``; a tiny C helper switches
instrumentation on for exactly one kernel call and dumps the count under the case name.
Numba is pinned to the CPU model valgrind emulates, so the cache compiled natively is the
one loaded under valgrind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from uda.errors import UserError

PROBE = Path(__file__).with_name("regress_probe.py")
DEFAULT_THRESHOLD = 0.10
#: Detail of a kernel that runs at HEAD but not at BASE (status ``new``; does not fail the check).
NOT_AT_BASE = "not measured at BASE"
#: Fixed settings that make the counts repeat (and threads not to matter).
FIXED_ENV = {"PYTHONHASHSEED": "0", "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
             "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "POLARS_MAX_THREADS": "1",
             "PYTHONDONTWRITEBYTECODE": "1"}
_HELPER_C = r"""
#include <valgrind/callgrind.h>
void uda_cg_start(void) { CALLGRIND_ZERO_STATS; CALLGRIND_START_INSTRUMENTATION; }
void uda_cg_stop(const char *name) { CALLGRIND_STOP_INSTRUMENTATION; CALLGRIND_DUMP_STATS_AT(name); }
"""
_CPU_PROBE = "import llvmlite.binding as ll; print(ll.get_host_cpu_name()); print(ll.get_host_cpu_features().flatten())"


@dataclass
class KernelDelta:
    """One kernel's instruction counts in both revisions and the verdict.

    ``status`` is ``ok`` (within the threshold), ``slower`` (fails the check), ``faster``,
    ``new`` (missing in BASE: ``detail`` starts with "not measured at BASE" and gives the
    reason; does not fail the check), ``gone`` (not in HEAD), or ``broken`` (ran on BASE,
    fails on HEAD: fails the check) / ``error`` (fails in both, or only on BASE).
    """

    kernel: str
    base: int | None
    head: int | None
    ratio: float | None
    status: str
    detail: str = ""


@dataclass
class RegressResult:
    """Outcome of :func:`regress`; ``failed`` means the check exits with status 1."""

    base: str
    head: str
    threshold: float
    kernels: list[KernelDelta]
    seconds: float
    method: str = "callgrind instruction count of one call per kernel"
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        """Whether a kernel got slower than the threshold or broke."""
        return any(k.status in ("slower", "broken") for k in self.kernels)

    @property
    def not_measured_at_base(self) -> list[str]:
        """Kernels measured at HEAD only (missing in BASE): the comparison does not cover them."""
        return [k.kernel for k in self.kernels if k.status == "new"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (with ``failed`` and ``not_measured_at_base``)."""
        d = asdict(self)
        d["failed"] = self.failed
        d["not_measured_at_base"] = self.not_measured_at_base
        return d


# ---- decision --------------------------------------------------------------------------------

def decide(base: dict[str, dict[str, Any]], head: dict[str, dict[str, Any]], *,
           threshold: float = DEFAULT_THRESHOLD) -> list[KernelDelta]:
    """Compare per-kernel measurements of two revisions.

    Parameters
    ----------
    base, head
        ``{kernel: {"status": "ok"|"missing"|"error", "instructions": int, "detail": str}}``.
    threshold
        A kernel fails when ``head / base - 1`` exceeds this (0.1 = 10 % more instructions).

    Returns
    -------
    list of KernelDelta
        One row per kernel in either revision, in name order.
    """
    rows = []
    for name in sorted(set(base) | set(head)):
        b = base.get(name, {"status": "missing", "detail": "not measured"})
        h = head.get(name, {"status": "missing", "detail": "not measured"})
        bi, hi = b.get("instructions"), h.get("instructions")
        if b["status"] == "ok" and h["status"] == "ok":
            ratio = hi / bi if bi else float("inf")
            if ratio > 1.0 + threshold:
                status = "slower"
            elif ratio < 1.0 / (1.0 + threshold):
                status = "faster"
            else:
                status = "ok"
            rows.append(KernelDelta(name, bi, hi, ratio, status))
        elif b["status"] == "ok" and h["status"] == "error":
            rows.append(KernelDelta(name, bi, None, None, "broken", h.get("detail", "")))
        elif b["status"] == "ok":
            rows.append(KernelDelta(name, bi, None, None, "gone", h.get("detail", "")))
        elif h["status"] == "ok" and b["status"] == "missing":
            # Not a failure (a kernel added since BASE), but said in the row: a probe that cannot
            # find a moved kernel in an old tree would otherwise pass while measuring less.
            why = b.get("detail", "")
            rows.append(KernelDelta(name, None, hi, None, "new",
                                    NOT_AT_BASE + (f" ({why})" if why else "")))
        elif h["status"] == "ok":
            rows.append(KernelDelta(name, None, hi, None, "error", b.get("detail", "")))
        else:
            rows.append(KernelDelta(name, None, None, None, "error",
                                    h.get("detail", "") or b.get("detail", "")))
    return rows


def parse_callgrind(folder: str | os.PathLike) -> dict[str, int]:
    """Instruction counts per dump name from the callgrind output files in ``folder``."""
    counts: dict[str, int] = {}
    for path in sorted(Path(folder).glob("callgrind.out*")):
        name = total = None
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("desc: Trigger: Client Request: "):
                    name = line.split("Client Request: ", 1)[1].strip()
                elif line.startswith(("totals:", "summary:")):
                    total = int(line.split()[1])
        if name is not None and total is not None:
            counts[name] = total
    return counts


# ---- tools and trees ---------------------------------------------------------------------

def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/uda/regress`` (``~/.cache/uda/regress``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "uda" / "regress"


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kwargs)


def _require(tool: str, fix: str) -> str:
    path = shutil.which(tool)
    if path is None:
        msg = f"{tool} is not installed; {fix}"
        raise UserError(msg)
    return path


def resolve(repo: str | os.PathLike, rev: str) -> str:
    """Full commit hash of ``rev`` in ``repo`` (a UserError if either is wrong)."""
    _require("git", "install git")
    top = _run(["git", "-C", str(repo), "rev-parse", "--show-toplevel"])
    if top.returncode != 0:
        msg = f"{repo} is not inside a git repository; run from the uda checkout or pass --repo"
        raise UserError(msg)
    out = _run(["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"])
    if out.returncode != 0:
        msg = f"unknown revision {rev!r}; give a commit, branch or tag of {top.stdout.strip()}"
        raise UserError(msg)
    return out.stdout.strip()


def extract(repo: str | os.PathLike, sha: str, cache_dir: str | os.PathLike) -> Path:
    """The source tree of commit ``sha`` under ``cache_dir/src/<sha>`` (extracted once, atomically)."""
    final = Path(cache_dir) / "src" / sha
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{sha[:12]}-", dir=final.parent))
    try:
        proc = subprocess.Popen(["git", "-C", str(repo), "archive", "--format=tar", sha],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4
                tar.extractall(tmp, filter="data")
            else:
                tar.extractall(tmp)  # noqa: S202 - our own repository's commit
        err = proc.stderr.read().decode(errors="replace")
        if proc.wait() != 0:
            msg = f"git archive {sha[:12]} failed: {err.strip()}"
            raise UserError(msg)
        try:
            os.replace(tmp, final)
        except OSError:  # another check extracted the same commit meanwhile
            if not final.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def helper_library(cache_dir: str | os.PathLike) -> Path:
    """The compiled callgrind start/stop helper (built once per cache folder)."""
    _require("valgrind", "install valgrind (e.g. apt-get install valgrind) to run the regression check")
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        msg = "no C compiler found to build the callgrind helper; install gcc or set CC"
        raise UserError(msg)
    digest = hashlib.sha256(_HELPER_C.encode()).hexdigest()[:12]
    lib = Path(cache_dir) / "lib" / f"libudacg-{digest}.so"
    if lib.exists():
        return lib
    lib.parent.mkdir(parents=True, exist_ok=True)
    src = lib.with_suffix(".c")
    src.write_text(_HELPER_C, encoding="utf-8")
    tmp = lib.with_name(f".{lib.name}.{os.getpid()}")
    out = _run([cc, "-O2", "-shared", "-fPIC", "-o", str(tmp), str(src)])
    if out.returncode != 0:
        msg = f"could not build the callgrind helper (is valgrind's callgrind.h installed?): {out.stderr.strip()[:200]}"
        raise UserError(msg)
    os.replace(tmp, lib)
    return lib


def valgrind_cpu(cache_dir: str | os.PathLike) -> tuple[str, str]:
    """CPU name and features LLVM sees under valgrind (cached), to pin Numba's target to them."""
    import llvmlite

    version = _run(["valgrind", "--version"]).stdout.strip()
    key = hashlib.sha256(f"{version}|{sys.executable}|{llvmlite.__version__}".encode()).hexdigest()[:12]
    path = Path(cache_dir) / f"cpu-{key}.json"
    if path.exists():
        d = json.loads(path.read_text(encoding="utf-8"))
        return d["name"], d["features"]
    out = _run(["valgrind", "--tool=none", "-q", sys.executable, "-c", _CPU_PROBE])
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or len(lines) < 2:
        msg = f"python does not run under valgrind here: {out.stderr.strip()[-200:]}"
        raise UserError(msg)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"name": lines[0], "features": lines[1]}), encoding="utf-8")
    return lines[0], lines[1]


def probe_env(tree: str | os.PathLike, cpu: tuple[str, str], cache_dir: str | os.PathLike) -> dict[str, str]:
    """Environment of the probe: the revision's tree first on the path, fixed seeds and threads."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("NUMBA_", "PYTHON")) or k in ("PYTHONUNBUFFERED",)}
    env.update(FIXED_ENV)
    env.update({"PYTHONPATH": str(tree), "NUMBA_CPU_NAME": cpu[0], "NUMBA_CPU_FEATURES": cpu[1],
                "NUMBA_CACHE_DIR": str(Path(cache_dir) / "numba")})
    return env


def probe_cases() -> list[str]:
    """Names of the kernels the probe measures."""
    out = _run([sys.executable, str(PROBE), "--list"], check=True)
    return out.stdout.split()


def measure_revision(tree: str | os.PathLike, *, cache_dir: str | os.PathLike, cases: list[str],
                     lib: str | os.PathLike, cpu: tuple[str, str],
                     timeout: float = 1800) -> tuple[dict[str, dict[str, Any]], dict[str, float]]:
    """Warm the Numba cache natively, then count each kernel's instructions under callgrind.

    Returns
    -------
    per_kernel, seconds
        ``{kernel: {"status", "detail", "instructions"?}}`` and the wall time of the
        ``warm`` and ``callgrind`` steps.
    """
    env = probe_env(tree, cpu, cache_dir)
    with tempfile.TemporaryDirectory(prefix="uda-regress-") as work:
        probe = Path(work) / "probe.py"
        shutil.copyfile(PROBE, probe)
        sel = ["--cases", ",".join(cases)]
        # A revision warmed before with this probe, case list and CPU target keeps its Numba
        # cache in cache_dir, so the native warm-up (compilation) is skipped.
        key = hashlib.sha256("|".join([PROBE.read_text(encoding="utf-8"), *cases, *cpu]).encode()).hexdigest()[:16]
        marker = Path(tree).with_name(f"{Path(tree).name}.warm-{key}.json")
        t0 = time.perf_counter()
        if marker.exists():
            status = json.loads(marker.read_text(encoding="utf-8"))
        else:
            warm = _run([sys.executable, str(probe), "--warm", "--out", str(Path(work) / "warm.json"), *sel],
                        env=env, cwd=work, timeout=timeout)
            if warm.returncode != 0:
                msg = f"the probe failed on {tree}: {warm.stderr.strip()[-300:]}"
                raise UserError(msg)
            status = json.loads((Path(work) / "warm.json").read_text(encoding="utf-8"))
            tmp = marker.with_name(f".{marker.name}.{os.getpid()}")
            tmp.write_text(json.dumps(status), encoding="utf-8")
            os.replace(tmp, marker)
        t1 = time.perf_counter()
        runnable = [c for c in cases if status.get(c, {}).get("status") == "ok"]
        if runnable:
            cg = _run(["valgrind", "--tool=callgrind", "--instr-atstart=no", "-q",
                       f"--callgrind-out-file={Path(work) / 'callgrind.out'}",
                       sys.executable, str(probe), "--measure", str(lib), "--cases", ",".join(runnable),
                       "--out", str(Path(work) / "measure.json")],
                      env=env, cwd=work, timeout=timeout)
            if cg.returncode != 0:
                msg = f"the probe failed under callgrind on {tree}: {cg.stderr.strip()[-300:]}"
                raise UserError(msg)
            counts = parse_callgrind(work)
            measured = json.loads((Path(work) / "measure.json").read_text(encoding="utf-8"))
            for c in runnable:
                if measured.get(c, {}).get("status") != "ok":
                    status[c] = measured.get(c, {"status": "error", "detail": "not measured"})
                elif c in counts:
                    status[c]["instructions"] = counts[c]
                else:
                    status[c] = {"status": "error", "detail": "no callgrind dump for this kernel"}
        t2 = time.perf_counter()
    return status, {"warm": t1 - t0, "callgrind": t2 - t1}


def regress(base: str, head: str, *, repo: str | os.PathLike = ".", threshold: float = DEFAULT_THRESHOLD,
            kernels: list[str] | None = None, cache_dir: str | os.PathLike | None = None,
            progress: Callable[[str], None] | None = None) -> RegressResult:
    """Count the instructions of every core kernel at two revisions and compare them.

    Parameters
    ----------
    base, head
        Revisions (commit, branch, tag) of ``repo``; HEAD is the candidate.
    repo
        A folder inside the git checkout.
    threshold
        Fail when a kernel executes more than ``1 + threshold`` times BASE's instructions.
    kernels
        Probe case names to measure (default: all, see :func:`probe_cases`).
    cache_dir
        Extracted trees, Numba caches and the helper library (default
        :func:`default_cache_dir`); reusing it skips recompiling unchanged revisions.
    progress
        Called with a short message as each step starts.

    Returns
    -------
    RegressResult
    """
    if not 0.0 < threshold < 10.0:
        msg = f"--threshold {threshold} is out of range; use a fraction such as 0.1 (10 %)"
        raise UserError(msg)
    say = progress or (lambda _msg: None)
    start = time.perf_counter()
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    all_cases = probe_cases()
    if kernels:
        unknown = [k for k in kernels if k not in all_cases]
        if unknown:
            msg = f"unknown kernel {unknown[0]!r}; choose from: {', '.join(all_cases)}"
            raise UserError(msg)
    cases = kernels or all_cases
    shas = [resolve(repo, base), resolve(repo, head)]
    lib = helper_library(cache)
    say("finding the CPU valgrind emulates")
    cpu = valgrind_cpu(cache)
    trees = [extract(repo, sha, cache) for sha in shas]
    say(f"measuring {len(cases)} kernels at {shas[0][:12]} and {shas[1][:12]} (in parallel)")
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(measure_revision, t, cache_dir=cache, cases=cases, lib=lib, cpu=cpu)
                   for t in trees]
        (b, tb), (h, th) = (f.result() for f in futures)
    rows = decide(b, h, threshold=threshold)
    unmeasured = [r.kernel for r in rows if r.status == "new"]
    if unmeasured:
        say(f"{NOT_AT_BASE} {shas[0][:12]}: {', '.join(unmeasured)}")
    timings = {"base_warm": tb["warm"], "base_callgrind": tb["callgrind"],
               "head_warm": th["warm"], "head_callgrind": th["callgrind"]}
    return RegressResult(base=shas[0], head=shas[1], threshold=threshold, kernels=rows,
                         seconds=time.perf_counter() - start, timings=timings)
