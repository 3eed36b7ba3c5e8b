"""Versions of installed distributions, for the records uda writes (results files, dataset manifests)."""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version


def package_versions(names: Iterable[str]) -> dict[str, str | None]:
    """Installed version of each distribution in ``names`` (``None`` when not installed).

    Read from the installed metadata, so nothing is imported (Polars alone takes 0.2–0.5 s).
    """
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out
