"""Shared fixtures: small generated datasets, built once per test session."""

from __future__ import annotations

import pytest

from uda.generate import generate
from uda.scales import resolve_scale


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """The ``tiny`` preset (7 days from a Monday), seed 1."""
    out = tmp_path_factory.mktemp("data") / "tiny"
    generate(out, scale=resolve_scale("tiny"), seed=1, workers=2)
    return out


@pytest.fixture(scope="session")
def week_dataset(tmp_path_factory):
    """A week of a small city: enough sensors, sites and events for statistical checks."""
    out = tmp_path_factory.mktemp("data") / "week"
    generate(out, scale=resolve_scale("small", days=7, cards=4000), seed=7, workers=2)
    return out
