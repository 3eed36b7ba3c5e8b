"""The dataset cache of a run: where a scale's dataset lives, generating it when missing, and its record."""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from uda.contract import GENERATED_TABLES
from uda.errors import UserError
from uda.harness.results import file_digest
from uda.harness.runner.suite import parse_scale, scale_sizes


def dataset_dir(scale: str, seed: int, datasets_dir: str | os.PathLike) -> Path:
    """Where the dataset of ``scale`` (a preset, optionally with overrides) and ``seed`` lives."""
    preset, overrides = parse_scale(scale)
    name = "-".join([preset, *(f"{k}{v}" for k, v in sorted(overrides.items()))])
    return Path(datasets_dir) / f"{name}-seed{seed}"


def scale_tables(scale: str) -> tuple[str, ...]:
    """The ``uda generate --tables`` kinds a dataset of ``scale`` holds: its ``tables=``
    override, or every kind the generator makes."""
    tables = parse_scale(scale)[1].get("tables", ",".join(GENERATED_TABLES))
    return tuple(x.strip() for x in tables.split(",") if x.strip())


def has_tables(path: Path, scale: str) -> bool:
    """Whether ``path`` holds a finished dataset with every table ``scale`` asks for (one made
    before a table kind was added to the generator lacks it and is made again)."""
    try:
        made = json.loads((path / "manifest.json").read_text())["params"]["tables"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return isinstance(made, list) and set(scale_tables(scale)) <= set(made)


def generate_dataset(scale: str, seed: int, path: str | os.PathLike) -> None:
    """Generate the dataset of ``scale`` and ``seed`` into ``path`` as ``uda generate`` does.

    ``scale`` is a preset with ``uda generate`` overrides (``"small:sensors=600,days=7"``);
    the same options give the same files as ``uda generate --scale PRESET --KEY VALUE ...
    --seed SEED --out PATH`` (``--force`` when ``path`` exists), stale temporary folders of
    killed generations included.
    """
    # imported here: this runs in the generating process, and the harness's own stays without Numba and Arrow
    from uda.generate import DEFAULT_CHUNK_ROWS, generate
    from uda.scales import resolve_scale
    from uda.store import remove_stale_temp_folders, split_location
    from uda.synth.profiles import resolve_profile

    preset, overrides = parse_scale(scale)
    sc = resolve_scale(preset, **scale_sizes(overrides))
    out = str(path)
    if split_location(out)[0] is None:
        remove_stale_temp_folders(split_location(out)[1])
    generate(out, scale=sc, seed=seed, workers=int(overrides["workers"]) if "workers" in overrides else None,
             chunk_rows=int(overrides.get("chunk-rows", DEFAULT_CHUNK_ROWS)), force=Path(out).exists(),
             tables=scale_tables(scale),
             defects=resolve_profile(overrides.get("defects", "none")))


def ensure_dataset(scale: str, *, seed: int, datasets_dir: str | os.PathLike,
                   log: Callable[[str], None] | None = None) -> Path:
    """Return the dataset folder for ``scale``/``seed``, generating it (:func:`generate_dataset`) if missing.

    ``scale`` is a preset name, optionally with overrides: ``"medium:sensors=600,days=14"``.
    The generation runs in a fresh process of its own (the library, not the command line):
    the harness process stays small while the cases it supervises run, since a generation's
    memory (Arrow buffers, Numba's compiled kernels) would not all return to the system.
    """
    path = dataset_dir(scale, seed, datasets_dir)
    if has_tables(path, scale):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    if log:
        log(f"generating dataset {path} (scale {scale}, seed {seed})")
    failed = f"`uda generate --scale {scale} --seed {seed}` failed"
    kind, text = run_in_child(generate_dataset, scale, seed, str(path))
    if kind == "user":
        msg = f"{failed}: Error: {text}"
        raise UserError(msg)
    if kind == "died":
        msg = f"{failed}: the generating process ended abruptly (killed, or out of memory)"
        raise UserError(msg)
    if kind == "error":
        msg = f"{failed}: {text}"
        raise UserError(msg)
    return path


def _child_main(conn: Any, fn: Callable[..., object], args: tuple[Any, ...]) -> None:
    """Body of :func:`run_in_child`'s process: run ``fn`` and send back how it ended."""
    try:
        fn(*args)
    except UserError as exc:
        conn.send(("user", str(exc)))
    except Exception as exc:  # noqa: BLE001 - any failure is reported to the parent
        text = (str(exc).strip().splitlines() or [""])[0][:200]
        conn.send(("error", f"{exc.__class__.__name__}: {text}"))
    else:
        conn.send(("ok", ""))


def run_in_child(fn: Callable[..., object], *args: Any) -> tuple[str, str]:
    """Run ``fn(*args)`` in a fresh (spawned) process and wait for it.

    Anything that ends the wait early — Ctrl-C, or ``SIGTERM``/``SIGHUP`` turned into an
    exception by the harness — stops the child before it propagates, so an interrupted
    ``uda bench`` does not leave a generation running (its temporary folder is removed by
    the next run).

    Returns
    -------
    tuple of str
        ``("ok", "")``, ``("user", message)`` for a :class:`~uda.errors.UserError`,
        ``("error", "Class: first line")`` for any other exception, or ``("died", "")``
        when the process ended without a word (killed, out of memory).
    """
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child_main, args=(send, fn, args), daemon=True)
    proc.start()
    send.close()
    try:
        try:
            kind, text = receive.recv()
        except EOFError:
            kind, text = "died", ""
        proc.join()
    except BaseException:
        proc.terminate()
        proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join()
        raise
    finally:
        receive.close()
    return kind, text


def describe_dataset(path: str | os.PathLike, *, scale: str | None = None,
                     seed: int | None = None) -> dict[str, Any]:
    """The results file's record of a dataset: manifest checksum, parameters, table sizes."""
    p = Path(path)
    manifest = json.loads((p / "manifest.json").read_text())
    tables = {name: {"rows": t.get("rows"), "bytes": t.get("bytes"), "checksum": t.get("checksum")}
              for name, t in manifest.get("tables", {}).items()}
    return {
        "path": str(p),
        "scale": scale if scale is not None else manifest.get("params", {}).get("scale"),
        "seed": seed if seed is not None else manifest.get("params", {}).get("seed"),
        "manifest_sha256": file_digest(p / "manifest.json"),
        "params": manifest.get("params", {}),
        "rows": sum(t["rows"] or 0 for t in tables.values()),
        "bytes": sum(t["bytes"] or 0 for t in tables.values()),
        "tables": tables,
    }
