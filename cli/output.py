"""Helpers shared by the commands: option values, JSON-safe results, wide tables."""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


def json_safe(obj: Any) -> Any:
    """JSON-safe copy: NaN/inf become null, NumPy scalars plain numbers, keys strings."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, str):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


#: Width of the console when the output is not a terminal (rich would otherwise assume 80
#: columns and cut every cell to "…"): tables take their natural width.
UNLIMITED = 100_000


def wide_console() -> Console:
    """A rich console for stdout: the terminal's width, or unlimited when piped, so that a
    table is never cut (it takes its natural width) and lines are not wrapped."""
    from rich.console import Console

    tty = sys.stdout.isatty()
    return Console(width=None if tty else UNLIMITED, soft_wrap=not tty)


def missing_codes(text: str | None) -> tuple[float, ...] | None:
    """``--missing``: None when not given (the reader detects codes), ``()`` for ``none``."""
    if text is None:
        return None
    return () if text.strip().lower() == "none" else numbers(text, "--missing")


def numbers(text: str | None, option: str) -> tuple[float, ...]:
    """Comma-separated numbers of ``option`` (e.g. ``--missing -1,9999``); ``()`` if not given."""
    from uda.errors import UserError

    if not text:
        return ()
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        msg = f"cannot read {option} {text!r}; give comma-separated numbers like -1,9999"
        raise UserError(msg) from None
