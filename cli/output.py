"""Helpers for what commands print: JSON-safe copies of results."""

from __future__ import annotations

import math
from typing import Any


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
