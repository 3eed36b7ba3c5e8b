"""The dataset format: ``manifest.json``, file records, checksums and the checks on an untrusted manifest.

A dataset is a folder holding Parquet files and a ``manifest.json`` written last. Each
table is a list of files (paths relative to the dataset folder) with their rows, bytes
and SHA-256, and an order-independent content checksum of the whole table. Standardised
tables live in ``clean/`` with a manifest of their own (:func:`with_clean_tables`).
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from uda.errors import UserError
from uda.kernels.checksum import finish_checksum
from uda.store.location import parse_json, split_location

MANIFEST = "manifest.json"
FORMAT = "uda-dataset"
FORMAT_VERSION = 1
#: Every page carries a CRC-32 (``write_page_checksum``): readers that verify page checksums
#: (pyarrow with ``page_checksum_verification``, used by ``uda verify``) detect a damaged page.
PARQUET_OPTIONS = {"compression": "zstd", "compression_level": 1, "write_page_checksum": True}
#: Bounds on an untrusted manifest: its size in bytes and the nesting depth of its JSON.
MAX_MANIFEST_BYTES = 64 * 2**20
MAX_MANIFEST_DEPTH = 16


def file_sha256(path: Path | str, *, block: int = 1 << 22, fs: Any | None = None) -> str:
    """SHA-256 of a file's bytes (local, or on the fsspec filesystem ``fs``)."""
    h = hashlib.sha256()
    with (open(path, "rb") if fs is None else fs.open(path, "rb")) as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


def schema_dict(schema: pa.Schema) -> dict[str, str]:
    """A Parquet/Arrow schema as ``{column: type}`` strings."""
    return {f.name: str(f.type) for f in schema}


@dataclass
class FilePart:
    """One written Parquet file of a table."""

    path: str
    rows: int
    bytes: int
    sha256: str
    hash_sum: int
    meta: dict[str, Any] = field(default_factory=dict)


def table_entry(parts: list[FilePart], schema: pa.Schema, **extra: Any) -> dict[str, Any]:
    """The manifest entry of a table made of ``parts``."""
    parts = sorted(parts, key=lambda p: p.path)
    rows = sum(p.rows for p in parts)
    sdict = schema_dict(schema)
    total = sum(p.hash_sum for p in parts) % (1 << 64)
    return {
        "rows": rows,
        "bytes": sum(p.bytes for p in parts),
        "checksum": finish_checksum(total, rows, sdict),
        "schema": sdict,
        "files": [
            {"path": p.path, "rows": p.rows, "bytes": p.bytes, "sha256": p.sha256, **p.meta}
            for p in parts
        ],
        **extra,
    }


def resolve_inside(root: Path | str, rel: str, *, remote: bool = False) -> Path | str:
    """``root/rel``, refusing paths that escape ``root`` (untrusted manifests)."""
    if remote:
        p = posixpath.normpath(f"{root}/{rel}")
        if rel.startswith("/") or "://" in rel or not p.startswith(f"{root}/"):
            msg = f"manifest path {rel!r} points outside the dataset folder {root}; the manifest is not trustworthy, regenerate the dataset"
            raise UserError(msg)
        return p
    root_r = Path(root).resolve()
    p = (Path(root) / rel).resolve()
    if Path(rel).is_absolute() or not p.is_relative_to(root_r):
        msg = f"manifest path {rel!r} points outside the dataset folder {root}; the manifest is not trustworthy, regenerate the dataset"
        raise UserError(msg)
    return p


def read_manifest(path: str | os.PathLike) -> tuple[Path | str, dict[str, Any], Any | None]:
    """Read and sanity-check ``path/manifest.json``; returns ``(root, manifest, fs)``."""
    fs, root = split_location(path)
    if fs is not None:
        mpath = f"{root}/{MANIFEST}"
        if not fs.exists(mpath):
            msg = f"{path} is not a uda dataset (no {MANIFEST}); it may be missing or incomplete, regenerate it with `uda generate`"
            raise UserError(msg)
        if fs.size(mpath) > MAX_MANIFEST_BYTES:
            msg = f"{path}/{MANIFEST} is larger than a manifest can be ({MAX_MANIFEST_BYTES:,} bytes); regenerate the dataset"
            raise UserError(msg)
        text = fs.cat_file(mpath)
    else:
        if not root.exists():
            msg = f"dataset folder {root} does not exist; create one with `uda generate --out {root}`"
            raise UserError(msg)
        if not root.is_dir():
            msg = f"{root} is not a folder; pass the dataset folder written by `uda generate`"
            raise UserError(msg)
        mpath = root / MANIFEST
        if not mpath.is_file():
            msg = f"{root} is not a uda dataset (no {MANIFEST}); it may be incomplete, regenerate it with `uda generate`"
            raise UserError(msg)
        size = mpath.stat().st_size
        if size > MAX_MANIFEST_BYTES:
            msg = f"{mpath} is {size:,} bytes, more than a manifest can be ({MAX_MANIFEST_BYTES:,}); regenerate the dataset"
            raise UserError(msg)
        text = mpath.read_bytes()
    manifest = parse_manifest(text, str(mpath))
    return root, manifest, fs


def _depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (iterative: safe on any input)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict | list):
            deepest = max(deepest, d)
            if d <= MAX_MANIFEST_DEPTH:
                stack.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def parse_manifest(text: bytes | str, where: str) -> dict[str, Any]:
    """Parse and validate the text of a ``manifest.json`` (untrusted input).

    Checks, before anything uses it: size and nesting depth, ``format`` and
    ``format_version``, and the shape of every table entry and file record (``path`` a
    non-empty relative string without NUL bytes, ``rows``/``bytes`` counts, ``sha256`` 64
    hex digits, ``schema`` a ``{column: type}`` object).

    Raises
    ------
    UserError
        Naming the first problem found.
    """
    fix = "regenerate the dataset"
    manifest = parse_json(text, where, "a manifest", fix, limit=MAX_MANIFEST_BYTES)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(manifest.get("tables"), dict):
        msg = f"{where} is not a uda manifest (missing format or tables); {fix}"
        raise UserError(msg)
    if _depth(manifest) > MAX_MANIFEST_DEPTH:
        msg = f"{where} is nested deeper than a manifest can be (more than {MAX_MANIFEST_DEPTH} levels); {fix}"
        raise UserError(msg)
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        newer = _count(version) and version > FORMAT_VERSION
        msg = (f"{where} has format_version {repr(version)[:40]}; this uda reads version {FORMAT_VERSION}"
               + ("; upgrade uda or " if newer else "; ") + fix)
        raise UserError(msg)
    for key in ("params", "run", "versions"):
        if key in manifest and not isinstance(manifest[key], dict):
            msg = f"{where}: {key!r} must be an object; {fix}"
            raise UserError(msg)
    for name, entry in manifest["tables"].items():
        _check_entry(name, entry, f"{where}: table {name[:80]!r}", fix)
    return manifest


def _check_entry(name: str, entry: Any, where: str, fix: str) -> None:
    if not isinstance(entry, dict) or not isinstance(entry.get("files"), list):
        msg = f"{where} has no file list; {fix}"
        raise UserError(msg)
    for key in ("rows", "bytes"):
        if not _count(entry.get(key)):
            msg = f"{where}: {key} must be a whole number >= 0, got {str(entry.get(key))[:40]!r}; {fix}"
            raise UserError(msg)
    schema = entry.get("schema")
    if not isinstance(schema, dict) or not all(isinstance(v, str) for v in schema.values()):
        msg = f"{where}: schema must be an object of column types; {fix}"
        raise UserError(msg)
    if not isinstance(entry.get("checksum"), str):
        msg = f"{where}: checksum must be a string; {fix}"
        raise UserError(msg)
    seen: set[str] = set()
    for i, f in enumerate(entry["files"]):
        if not isinstance(f, dict):
            msg = f"{where}: file {i + 1} must be an object with path, rows, bytes and sha256; {fix}"
            raise UserError(msg)
        path = f.get("path")
        if (not isinstance(path, str) or not path or "\0" in path or len(path) > 4096
                or path.startswith(("/", "\\")) or "://" in path):
            msg = f"{where}: file {i + 1} has a bad path {str(path)[:80]!r}; {fix}"
            raise UserError(msg)
        if path in seen:
            msg = f"{where}: file {path[:80]!r} is listed twice; {fix}"
            raise UserError(msg)
        seen.add(path)
        sha = f.get("sha256")
        if not _count(f.get("rows")) or not _count(f.get("bytes")) or not (
                isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)):
            msg = f"{where}: file {path[:80]!r} needs rows and bytes (whole numbers >= 0) and a sha256 of 64 hex digits; {fix}"
            raise UserError(msg)


#: Sub-folder (with its own manifest) where standardised tables live.
CLEAN_DIR = "clean"


def with_clean_tables(root: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """``manifest`` plus the tables of ``root/clean/manifest.json`` it lacks (paths made dataset-relative)."""
    if not (Path(root) / CLEAN_DIR / MANIFEST).is_file():
        return manifest
    _, clean, _ = read_manifest(Path(root) / CLEAN_DIR)
    tables = dict(manifest["tables"])
    for name, entry in clean["tables"].items():
        if name not in tables:
            files = [{**f, "path": f"{CLEAN_DIR}/{f.get('path', '')}"} for f in entry["files"]]
            tables[name] = {**entry, "files": files, "source": CLEAN_DIR}
    return {**manifest, "tables": tables, CLEAN_DIR: {k: v for k, v in clean.items() if k != "tables"}}
