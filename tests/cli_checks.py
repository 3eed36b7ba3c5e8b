"""Helpers of the hostile-input tests (issue 16): run the CLI in-process, check a one-line error,
snapshot a folder, wait for a condition."""

from __future__ import annotations

import time
from pathlib import Path

from click.testing import CliRunner

from uda.cli.main import cli


def run_cli(args: list) -> object:
    """``uda ARGS`` through Click's test runner (arguments made strings)."""
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_one_line_error(res, *needles: str) -> str:
    """Exit 2, one ``Error:`` line on stderr, no traceback; returns the line."""
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error: "), res.stderr
    assert "Traceback" not in res.output
    for n in needles:
        assert n in err[0], err[0]
    return err[0]


def snapshot(root) -> dict[str, bytes]:
    """Every file below ``root`` and its bytes, to check that nothing changed."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(Path(root).rglob("*")) if p.is_file()}


def poll(cond, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``cond()`` to be true (checked every 50 ms)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()
