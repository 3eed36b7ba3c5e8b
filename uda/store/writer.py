"""Writing: Parquet parts, atomic files, and :class:`DatasetWriter` (a dataset or ``clean/``, manifest last).

Generation writes into a temporary sibling folder and renames it into place, so a folder
without a valid manifest is never a dataset; a remote dataset is staged locally and
uploaded with its manifest last. :func:`atomic_write` does the same for one file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pyarrow as pa
import pyarrow.parquet as pq

from uda.errors import UserError
from uda.kernels.checksum import table_hash_sum
from uda.store.location import split_location
from uda.store.manifest import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    PARQUET_OPTIONS,
    FilePart,
    table_entry,
)


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """``write(tmp)`` to a temporary file beside ``path``, then rename it into place, so that
    a reader never sees half a file and a failed write leaves the old one (and no temporary
    file)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """:func:`atomic_write` of ``text``, with one-line errors for a folder or an unwritable place."""
    if path.is_dir():
        msg = f"{path} is a folder; name a file to write (e.g. {path / 'result.json'})"
        raise UserError(msg)
    try:
        atomic_write(path, lambda tmp: tmp.write_text(text))
    except OSError as exc:
        msg = f"cannot write {path} ({exc.strerror or exc.__class__.__name__}); choose a writable place"
        raise UserError(msg) from None


def write_part(root: Path, rel: str, table: pa.Table, *, meta: dict[str, Any] | None = None,
               **options: Any) -> FilePart:
    """Write ``table`` to ``root/rel`` as Parquet and describe the file for the manifest.

    The file is encoded in memory with :data:`PARQUET_OPTIONS` and ``options`` (further
    ``pyarrow.parquet.write_table`` arguments: ``row_group_size``, per-column encodings)
    and its SHA-256 taken from those bytes before they are written, so it is not read back.
    """
    dest = root / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **PARQUET_OPTIONS, **options)
    buf = sink.getvalue()
    with open(dest, "wb") as f:
        f.write(buf)
    return FilePart(path=rel, rows=table.num_rows, bytes=buf.size, sha256=hashlib.sha256(buf).hexdigest(),
                    hash_sum=table_hash_sum(table), meta=dict(meta or {}))


class DatasetWriter:
    """Write a dataset atomically: into a temporary sibling, manifest last, then rename.

    Parameters
    ----------
    out
        Final dataset folder. Must not exist unless ``force`` is true; with ``force`` an
        existing folder is replaced only if it is a uda dataset or empty.
    force
        Replace an existing dataset at ``out``.
    """

    def __init__(self, out: str | os.PathLike, *, force: bool = False):
        self.fs, where = split_location(out)
        self.force = force
        self.tables: dict[str, dict[str, Any]] = {}
        if self.fs is None:
            self.out = Path(where).absolute()
            check_output_folder(self.out, force=force)
            self.tmp = self.out.parent / f".{self.out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        else:
            # remote: stage in a local temporary folder, upload on commit, manifest last
            self.out = where
            self.url = os.fspath(out)
            _check_remote_output(self.fs, where, self.url, force=force)
            self.tmp = Path(tempfile.mkdtemp(prefix="uda-stage-")) / "ds"

    def __enter__(self) -> DatasetWriter:
        try:
            self.tmp.mkdir(parents=True)
        except OSError as exc:
            msg = f"cannot write to {self.out.parent}: {exc.strerror}; choose a writable --out folder"
            raise UserError(msg) from None
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or self.fs is not None:
            shutil.rmtree(self.tmp if self.fs is None else self.tmp.parent, ignore_errors=True)

    @property
    def root(self) -> Path:
        """The temporary folder tables are written into."""
        return self.tmp

    def add_table(self, name: str, parts: list[FilePart], schema: pa.Schema, **extra: Any) -> None:
        """Record a table written as ``parts``."""
        self.tables[name] = table_entry(parts, schema, **extra)

    def write_table(self, name: str, rel: str, table: pa.Table, **extra: Any) -> None:
        """Write a small table as a single file and record it."""
        self.add_table(name, [write_part(self.tmp, rel, table)], table.schema, **extra)

    def commit(self, manifest: dict[str, Any]) -> Path:
        """Write ``manifest.json`` (with the recorded tables) and move the dataset into place."""
        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, **manifest,
                    "tables": self.tables}
        tmp_manifest = self.tmp / (MANIFEST + ".part")
        tmp_manifest.write_text(json.dumps(manifest, indent=1, sort_keys=False))
        tmp_manifest.rename(self.tmp / MANIFEST)
        if self.fs is not None:
            return self._upload()
        trash = None
        if self.out.exists():
            check_output_folder(self.out, force=self.force)
            trash = self.out.parent / f".{self.out.name}.old-{uuid.uuid4().hex[:8]}"
            self.out.rename(trash)
        self.tmp.rename(self.out)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
        return self.out

    def _upload(self) -> str:
        """Copy the staged dataset to the remote location; the manifest goes last.

        Object stores have no atomic rename: the old manifest is removed first, so a
        half-uploaded folder is never taken for a dataset.
        """
        fs, root = self.fs, self.out
        _check_remote_output(fs, root, self.url, force=self.force)
        if fs.exists(f"{root}/{MANIFEST}"):
            fs.rm(f"{root}/{MANIFEST}")
            fs.rm(root, recursive=True)
        for path in sorted(self.tmp.rglob("*")):
            if path.is_file() and path.name != MANIFEST:
                rel = path.relative_to(self.tmp).as_posix()
                fs.makedirs(f"{root}/{rel}".rsplit("/", 1)[0], exist_ok=True)
                fs.put_file(str(path), f"{root}/{rel}")
        fs.put_file(str(self.tmp / MANIFEST), f"{root}/{MANIFEST}")
        return self.url


def _check_remote_output(fs: Any, root: str, url: str, *, force: bool) -> None:
    if not fs.exists(root) or (fs.isdir(root) and not fs.ls(root)):
        return
    if not force:
        msg = f"--out {url} already exists; choose another location or pass --force to replace it"
        raise UserError(msg)
    if not fs.exists(f"{root}/{MANIFEST}"):
        msg = f"--out {url} exists and is not a uda dataset (no {MANIFEST}); refusing to replace it even with --force"
        raise UserError(msg)


#: Longest file name of a folder uda writes (leaves room for the ``.NAME.tmp-PID-XXXXXXXX`` sibling).
MAX_NAME_BYTES = 200


_TMP_NAME = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)-[0-9a-f]{8}$")


def stale_temp_folders(out: str | os.PathLike) -> list[Path]:
    """Temporary folders that killed writers of ``out`` left beside it.

    A dataset (or ``clean/``) is written into ``.NAME.tmp-PID-XXXXXXXX`` next to its final
    place and renamed into place when complete; a writer killed by ``SIGKILL`` (or a power
    cut) leaves that folder behind. It is stale when no process ``PID`` runs any more.
    """
    out = Path(out).absolute()
    stale = []
    try:
        siblings = list(out.parent.iterdir())
    except OSError:
        return []
    for p in siblings:
        m = _TMP_NAME.match(p.name)
        if m is None or m.group("name") != out.name or not p.is_dir() or p.is_symlink():
            continue
        if int(m.group("pid")) == os.getpid() or psutil.pid_exists(int(m.group("pid"))):
            continue
        stale.append(p)
    return sorted(stale)


def remove_stale_temp_folders(out: str | os.PathLike) -> list[Path]:
    """Remove :func:`stale_temp_folders` of ``out``; returns those removed."""
    removed = []
    for p in stale_temp_folders(out):
        shutil.rmtree(p, ignore_errors=True)
        if not p.exists():
            removed.append(p)
    return removed


def check_output_folder(out: Path, *, force: bool) -> None:
    """Refuse an output folder that exists (unless ``force`` and it is a dataset or empty)."""
    if len(os.fsencode(out.name)) > MAX_NAME_BYTES:
        msg = (f"--out folder name {out.name[:40]}... is {len(os.fsencode(out.name))} bytes long; "
               f"use a name of at most {MAX_NAME_BYTES} bytes")
        raise UserError(msg)
    try:
        out.exists()
    except OSError as exc:
        msg = f"--out {str(out)[:80]} cannot be used ({exc.strerror}); choose another folder"
        raise UserError(msg) from None
    if out.exists():
        if not out.is_dir():
            msg = f"--out {out} is a file; choose a folder path that does not exist"
            raise UserError(msg)
        if not force:
            msg = f"--out {out} already exists; choose another folder or pass --force to replace it"
            raise UserError(msg)
        if any(out.iterdir()) and not (out / MANIFEST).is_file():
            msg = (f"--out {out} exists and is not a uda dataset (no {MANIFEST}); "
                   "refusing to replace it even with --force; choose another folder")
            raise UserError(msg)
    parent = out.parent
    if not parent.exists():
        msg = f"the parent folder of --out ({parent}) does not exist; create it first"
        raise UserError(msg)
    if not os.access(parent, os.W_OK):
        msg = f"cannot write to {parent}; choose a writable --out folder"
        raise UserError(msg)
