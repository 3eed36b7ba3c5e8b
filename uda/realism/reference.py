"""Reference signatures: the committed ones, the band around a reference, verdicts."""

from __future__ import annotations

import json
from pathlib import Path

from uda.errors import UserError
from uda.realism.stats import STATS, Stat

#: Folder of the committed reference signatures.
SIGNATURES = Path(__file__).parents[1] / "data" / "realism"


def reference_names() -> list[str]:
    """Names of the committed reference signatures."""
    return sorted(p.stem for p in SIGNATURES.glob("*.json"))


def load_reference(ref: str) -> dict:
    """A reference signature: a committed name (see :func:`reference_names`) or a JSON file.

    A JSON file may hold a signature or the output of ``uda realism --json`` (its subject).
    """
    p = Path(ref)
    if not p.is_file():
        p = SIGNATURES / f"{ref}.json"
    if not p.is_file():
        names = ", ".join(reference_names()) or "(none)"
        msg = f"unknown reference {ref!r}; use one of {names} or a signature JSON file"
        raise UserError(msg)
    try:
        sig = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        msg = f"cannot read reference {p} ({exc.__class__.__name__}); it should be a signature JSON"
        raise UserError(msg) from None
    if isinstance(sig, dict) and "subject" in sig and "stats" not in sig:
        sig = sig["subject"]
    if not isinstance(sig, dict) or not isinstance(sig.get("stats"), dict):
        msg = f"{p} is not a signature (no 'stats'); write one with uda realism --json"
        raise UserError(msg)
    return sig


def band(stat: Stat, ref: dict) -> tuple[float, float] | None:
    """The band of ``stat`` around a reference summary (median, q25, q75), or None."""
    if ref is None or ref.get("q25") is None:
        return None
    return (max(ref["q25"] / stat.rel - stat.abs_tol, stat.floor),
            ref["q75"] * stat.rel + stat.abs_tol)


def verdict(value: float | None, bounds: tuple[float, float] | None) -> str:
    """``ok`` inside the band, ``low``/``high`` outside, ``n/a`` if either is missing."""
    if value is None or bounds is None:
        return "n/a"
    lo, hi = bounds
    if value < lo - 1e-12:
        return "low"
    if value > hi + 1e-12:
        return "high"
    return "ok"


def compare(subject: dict, reference: dict) -> list[dict]:
    """Per statistic: subject and reference summaries, the band and the verdict."""
    rows = []
    for st in STATS:
        s = subject["stats"].get(st.key)
        r = reference["stats"].get(st.key)
        b = band(st, r) if r else None
        rows.append({"key": st.key, "label": st.label, "group": st.group,
                     "subject": s, "reference": r,
                     "band": None if b is None else [b[0], b[1]],
                     "verdict": verdict(s.get("median") if s else None, b)})
    return rows
