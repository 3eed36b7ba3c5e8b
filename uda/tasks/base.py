"""What every analytic task returns, and how two engines' answers are compared.

The tasks themselves are listed in :mod:`uda.tasks.registry`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class TaskResult:
    """The outcome of one task run.

    Attributes
    ----------
    task, engine
        What ran, on which engine.
    answer
        Named arrays or scalars that two engines must agree on (the harness compares
        them: exact for integer arrays, a tolerance for floats).
    quality
        Quality of the answer (relative gap, forecast error, detector F1 ...).
    rows_in, bytes_in
        Input size read by the task.
    summary
        Anything else worth reporting (JSON-serialisable).
    """

    task: str
    engine: str
    answer: dict[str, Any] = field(default_factory=dict)
    quality: dict[str, float] = field(default_factory=dict)
    rows_in: int = 0
    bytes_in: int = 0
    summary: dict[str, Any] = field(default_factory=dict)


def compare_answers(a: dict[str, Any], b: dict[str, Any], *, rtol: float = 1e-6,
                    atol: float = 1e-9) -> list[str]:
    """Differences between two answers; an empty list means they agree.

    Integer, boolean and string values must match exactly; floats within
    ``rtol``/``atol`` (NaN equals NaN).
    """
    problems = []
    for key in sorted(set(a) | set(b)):
        if key not in a or key not in b:
            problems.append(f"{key}: present in only one answer")
            continue
        x, y = np.asarray(a[key]), np.asarray(b[key])
        if x.shape != y.shape:
            problems.append(f"{key}: shapes differ {x.shape} vs {y.shape}")
        elif x.dtype.kind == "f" or y.dtype.kind == "f":
            ok = np.isclose(x.astype(float), y.astype(float), rtol=rtol, atol=atol, equal_nan=True)
            if not ok.all():
                problems.append(f"{key}: {int((~ok).sum())} of {ok.size} values differ beyond rtol={rtol}")
        elif not np.array_equal(x, y):
            problems.append(f"{key}: values differ")
    return problems
