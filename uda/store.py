"""Dataset storage: Parquet tables, ``manifest.json``, checksums, atomic commit, verify.

A dataset is a folder holding Parquet files and a ``manifest.json`` written last. Each
table is a list of files (paths relative to the dataset folder); sensor tables are split
so that one sensor's series lives in one file, and each file becomes one Dask partition.
Generation writes into a temporary sibling folder and renames it into place, so a folder
without a valid manifest is never a dataset.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from uda.errors import UserError
from uda.kernels.checksum import finish_checksum, table_hash_sum

if TYPE_CHECKING:
    import dask.dataframe as dd
    import polars as pl

MANIFEST = "manifest.json"
FORMAT = "uda-dataset"
FORMAT_VERSION = 1
#: Every page carries a CRC-32 (``write_page_checksum``): readers that verify page checksums
#: (pyarrow with ``page_checksum_verification``, used by ``uda verify``) detect a damaged page.
PARQUET_OPTIONS = {"compression": "zstd", "compression_level": 1, "write_page_checksum": True}
#: Bounds on an untrusted manifest: its size in bytes and the nesting depth of its JSON.
MAX_MANIFEST_BYTES = 64 * 2**20
MAX_MANIFEST_DEPTH = 16


def split_location(location: str | os.PathLike) -> tuple[Any | None, str | Path]:
    """``(fsspec filesystem, path)`` for a URL, or ``(None, local Path)``.

    Local paths and ``file://`` URLs stay local (fast paths, atomic renames); any other
    fsspec URL (``memory://``, ``s3://`` ...) is opened with fsspec, which needs the
    matching backend installed (``s3fs`` for ``s3://`` ...).
    """
    text = os.fspath(location)
    if "://" not in text:
        return None, Path(text).expanduser()
    protocol = text.split("://", 1)[0]
    if protocol == "file":
        return None, Path(text[len("file://"):])
    import fsspec

    try:
        fs, root = fsspec.core.url_to_fs(text)
    except (ImportError, ValueError) as exc:
        msg = f"cannot open {text}: {exc}; install the fsspec backend for {protocol}:// (e.g. s3fs for s3://)"
        raise UserError(msg) from None
    return fs, root.rstrip("/")


def read_location(location: str | os.PathLike) -> bytes:
    """The bytes of a local file or an fsspec URL (``FileNotFoundError`` if there is none)."""
    fs, path = split_location(location)
    if fs is None:
        return Path(path).read_bytes()
    if not fs.isfile(path):
        raise FileNotFoundError(path)
    return fs.cat_file(path)


@contextlib.contextmanager
def output_location(location: str | os.PathLike, *, folder: bool) -> Iterator[Path]:
    """A local path to write ``location`` (a file, or a ``folder``) through.

    A local path or ``file://`` URL is yielded as it is (a file's folder is created if
    needed). For any other fsspec URL a
    temporary local path is yielded and, when the block ends without error, its
    contents are uploaded to ``location`` (nothing is uploaded after an error).
    """
    fs, root = split_location(location)
    if fs is None:
        local = Path(root)
        if not folder:
            make_folder(local.parent, f"the folder for {os.fspath(location)}")
        yield local
        return
    with tempfile.TemporaryDirectory(prefix="uda-out-") as tmp:
        local = Path(tmp) / "out"
        if folder:
            local.mkdir()
        yield local
        files = sorted(p for p in local.rglob("*") if p.is_file()) if folder else [local]
        try:
            for f in files:
                dest = f"{root}/{f.relative_to(local).as_posix()}" if folder else str(root)
                fs.makedirs(dest.rsplit("/", 1)[0], exist_ok=True)
                fs.put_file(str(f), dest)
        except OSError as exc:
            msg = f"cannot write {os.fspath(location)} ({exc.__class__.__name__}: {exc}); check the URL and your credentials"
            raise UserError(msg) from None


def make_folder(path: str | os.PathLike, what: str) -> Path:
    """``path`` created with its parents if needed; where it cannot be, a one-line error
    naming ``what`` the folder is for."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        msg = f"cannot create {what}, {p} ({exc.strerror or exc.__class__.__name__}); choose a writable place"
        raise UserError(msg) from None
    return p


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


def shown_path(location: str | os.PathLike, local_root: Path, path: str | os.PathLike) -> str:
    """How to show ``path``, written under ``local_root`` for ``location``: its final URL if remote."""
    if split_location(location)[0] is None:
        return str(path)
    rel = Path(path).relative_to(local_root).as_posix()
    return os.fspath(location).rstrip("/") + ("" if rel == "." else f"/{rel}")


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


def write_part(root: Path, rel: str, table: pa.Table, *, meta: dict[str, Any] | None = None,
               row_group_size: int | None = None) -> FilePart:
    """Write ``table`` to ``root/rel`` as Parquet and describe the file for the manifest."""
    dest = root / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, dest, row_group_size=row_group_size, **PARQUET_OPTIONS)
    return FilePart(
        path=rel,
        rows=table.num_rows,
        bytes=dest.stat().st_size,
        sha256=file_sha256(dest),
        hash_sum=table_hash_sum(table),
        meta=dict(meta or {}),
    )


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
            import tempfile

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
    import psutil

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


class Dataset:
    """A generated dataset: its manifest and readers for its tables.

    Use :func:`open_dataset` to open one; it checks the manifest first.
    """

    def __init__(self, path: Path | str, manifest: dict[str, Any], *, fs: Any | None = None):
        self.path = path
        self.manifest = manifest
        self.fs = fs
        self._checked: set[str] = set()

    @property
    def params(self) -> dict[str, Any]:
        """Generation parameters (scale, seed, sizes)."""
        return self.manifest.get("params", {})

    @property
    def tables(self) -> dict[str, dict[str, Any]]:
        """Manifest entries of all tables."""
        return self.manifest["tables"]

    def has(self, name: str) -> bool:
        """Whether the dataset holds table ``name``."""
        return name in self.tables

    def table(self, name: str) -> dict[str, Any]:
        """Manifest entry of table ``name``."""
        if name not in self.tables:
            msg = (f"dataset {self.path} has no table {name!r} (it has: "
                   f"{', '.join(sorted(self.tables))}); regenerate it with a uda that writes {name!r}")
            raise UserError(msg)
        return self.tables[name]

    def files(self, name: str) -> list[Path] | list[str]:
        """Paths of the files of table ``name``, each checked to stay inside the dataset.

        Local datasets give absolute :class:`~pathlib.Path` objects; remote ones give
        paths on their fsspec filesystem (``Dataset.fs``).
        """
        paths = [resolve_inside(self.path, f["path"], remote=self.fs is not None)
                 for f in self.table(name)["files"]]
        if name not in self._checked:
            self.check_files(name, paths)
            self._checked.add(name)
        return paths

    def check_files(self, name: str, paths: Sequence[Path | str] | None = None) -> None:
        """Cheap check of table ``name``'s files against the manifest before they are read.

        Each file must exist with the manifest's size, and its Parquet footer must be
        readable and give the manifest's row count. This reads a few KB per
        file; it does not detect a changed byte inside a data page (``uda verify`` does,
        by SHA-256 and page checksums).

        Raises
        ------
        UserError
            Naming the first file that does not match.
        """
        entry = self.table(name)
        if paths is None:
            paths = [resolve_inside(self.path, f["path"], remote=self.fs is not None) for f in entry["files"]]
        fix = f"restore it or regenerate the dataset (`uda verify {self.path}` lists every damaged file)"
        for f, path in zip(entry["files"], paths, strict=True):
            rel = f["path"]
            where = f"dataset {self.path}: file {rel} of table {name!r}"
            try:
                size = Path(path).stat().st_size if self.fs is None else self.fs.size(path)
            except (FileNotFoundError, NotADirectoryError):
                msg = f"{where} is missing; {fix}"
                raise UserError(msg) from None
            except OSError as exc:
                msg = f"{where} cannot be read ({exc.strerror or exc.__class__.__name__}); {fix}"
                raise UserError(msg) from None
            if size != f["bytes"]:
                msg = f"{where} has {size:,} bytes, the manifest says {f['bytes']:,} (damaged or replaced); {fix}"
                raise UserError(msg)
            try:
                with (open(path, "rb") if self.fs is None else self.fs.open(path, "rb")) as fh:
                    pf = pq.ParquetFile(fh)
                    rows = pf.metadata.num_rows
            except (pa.ArrowException, OSError) as exc:
                msg = f"{where} has no readable Parquet footer ({str(exc).splitlines()[0][:100]}); {fix}"
                raise UserError(msg) from None
            if rows != f["rows"]:
                msg = f"{where} does not match the manifest (its footer gives {rows:,} rows, the manifest {f['rows']:,}); {fix}"
                raise UserError(msg)

    def scan(self, name: str, *, files: Sequence[int] | None = None) -> pl.LazyFrame:
        """A Polars lazy scan of table ``name`` (only its ``files``-th files if given)."""
        import polars as pl

        paths = self.files(name)
        if files is not None:
            paths = [paths[i] for i in files]
        if self.fs is None:
            return pl.scan_parquet([str(p) for p in paths])
        import pyarrow.dataset as pds
        from pyarrow.fs import FSSpecHandler, PyFileSystem

        dataset = pds.dataset(paths, filesystem=PyFileSystem(FSSpecHandler(self.fs)), format="parquet")
        return pl.scan_pyarrow_dataset(dataset)

    def file_ranges(self, name: str, column: str) -> tuple[list[Any], list[Any], list[int]]:
        """Per file of table ``name``: least and greatest value of ``column`` and row count.

        Read from the Parquet footers' statistics (no data pages), falling back to reading
        the column of a file whose footer has none. Files without rows give ``None`` bounds.
        """
        import pyarrow.compute as pc

        lows: list[Any] = []
        highs: list[Any] = []
        rows: list[int] = []
        for path in self.files(name):
            with (open(path, "rb") if self.fs is None else self.fs.open(path, "rb")) as fh:
                pf = pq.ParquetFile(fh)
                md = pf.metadata
                idx = pf.schema_arrow.get_field_index(column)
                if idx < 0:
                    msg = (f"file {path} of table {name!r} has no column {column!r}; the dataset is "
                           "damaged or from another tool, regenerate it")
                    raise UserError(msg)
                stats = [md.row_group(r).column(idx).statistics for r in range(md.num_row_groups)
                         if md.row_group(r).num_rows]
                if all(s is not None and s.has_min_max for s in stats):
                    lo = min((s.min for s in stats), default=None)
                    hi = max((s.max for s in stats), default=None)
                else:
                    mm = pc.min_max(pf.read(columns=[column]).column(0))
                    lo, hi = mm["min"].as_py(), mm["max"].as_py()
            lows.append(lo)
            highs.append(hi)
            rows.append(md.num_rows)
        return lows, highs, rows

    def read(self, name: str) -> pl.DataFrame:
        """Table ``name`` as a Polars DataFrame (for the small city tables)."""
        return self.scan(name).collect()

    def dask(self, name: str, *, columns: list[str] | None = None) -> dd.DataFrame:
        """Table ``name`` as a Dask DataFrame with one partition per file (no shuffle needed)."""
        import dask.dataframe as dd

        kwargs = {} if self.fs is None else {"filesystem": self.fs}
        return dd.read_parquet([str(p) for p in self.files(name)], columns=columns,
                               split_row_groups=False, aggregate_files=False, **kwargs)


def resolve_inside(root: Path | str, rel: str, *, remote: bool = False) -> Path | str:
    """``root/rel``, refusing paths that escape ``root`` (untrusted manifests)."""
    if remote:
        import posixpath

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
    if len(text) > MAX_MANIFEST_BYTES:
        msg = f"{where} is {len(text):,} bytes, more than a manifest can be ({MAX_MANIFEST_BYTES:,}); {fix}"
        raise UserError(msg)
    try:
        manifest = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        msg = f"{where} is not valid JSON ({exc.__class__.__name__}); {fix}"
        raise UserError(msg) from None
    except RecursionError:
        msg = f"{where} is nested deeper than a manifest can be; {fix}"
        raise UserError(msg) from None
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


#: Datasets opened by this process, so a failed read can be traced to the bad file.
OPENED: list[str | os.PathLike] = []


def open_dataset(path: str | os.PathLike) -> Dataset:
    """Open the dataset at ``path`` (raises :class:`UserError` if it is not one).

    Tables that ``uda run standardise`` wrote into ``clean/`` (with their own manifest) are
    added under their names unless the dataset itself has a table of that name.
    """
    root, manifest, fs = read_manifest(path)
    if path in OPENED:
        OPENED.remove(path)
    OPENED.append(path)
    if fs is None:
        manifest = with_clean_tables(root, manifest)
    return Dataset(root, manifest, fs=fs)


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


def diagnose_read_error(exc: BaseException) -> UserError | None:
    """Explain a failed read by the first damaged file of the most recently opened datasets.

    Engines report a damaged Parquet file without naming it ("Unexpected end of stream",
    "Dictionary Index is out-of-bounds"); the manifest's sizes and SHA-256 sums find it.
    Returns ``None`` when every file of every opened dataset is intact (not a data problem).
    """
    for root in reversed(OPENED):
        try:
            problems = verify(root, content=False)
        except UserError as err:
            return err
        if problems:
            first = problems[0]
            msg = (f"dataset {root}: {first} ({exc.__class__.__name__}: {str(exc).splitlines()[0][:120]}); "
                   "restore the file or regenerate the dataset, then `uda verify` it")
            return UserError(msg)
    return None


def verify(path: str | os.PathLike, *, content: bool = True, progress=None,
           clean: bool = True) -> list[str]:
    """Re-check a dataset against its manifest, and ``clean/`` against its own.

    Every file must be present, inside the folder, with the manifest's size and SHA-256
    and a readable Parquet footer with its row count. Problems in ``clean/`` (written by
    ``uda run standardise``) are prefixed ``clean/``; a ``clean/`` folder without its
    manifest is a problem.

    Parameters
    ----------
    path
        Dataset folder.
    content
        Also re-read every table and recompute its content checksum.
    progress
        Optional callable ``progress(n_files_done)``.
    clean
        Also verify ``clean/``.

    Returns
    -------
    list of str
        One line per problem; empty when the dataset matches its manifest.
    """
    root, manifest, fs = read_manifest(path)
    problems = _verify_tables(root, manifest, fs, content=content, progress=progress)
    if fs is None and clean:
        clean_dir = Path(root) / CLEAN_DIR
        if (clean_dir / MANIFEST).is_file():
            try:
                problems += [f"{CLEAN_DIR}/{p}" for p in verify(clean_dir, content=content, progress=progress, clean=False)]
            except UserError as exc:
                problems.append(f"{CLEAN_DIR}/: {exc}")
        elif clean_dir.exists():
            problems.append(f"{CLEAN_DIR}/ exists but has no {MANIFEST}; rerun `uda run standardise --data {root}`")
    return problems


def _verify_tables(root: Path | str, manifest: dict[str, Any], fs: Any | None, *, content: bool,
                   progress=None) -> list[str]:
    """The problems of every table of ``manifest`` (see :func:`verify`)."""
    problems: list[str] = []
    for name, entry in manifest["tables"].items():
        total = 0
        rows = 0
        for f in entry["files"]:
            rel = f.get("path", "")
            try:
                p = resolve_inside(root, rel, remote=fs is not None)
            except UserError as exc:
                problems.append(f"{name}: {exc}")
                continue
            exists = p.is_file() if fs is None else fs.isfile(p)
            if not exists:
                problems.append(f"{name}: file {rel} is missing")
                continue
            size = p.stat().st_size if fs is None else fs.size(p)
            if size != f.get("bytes") or file_sha256(p, fs=fs) != f.get("sha256"):
                problems.append(f"{name}: file {rel} does not match its manifest checksum (corrupted or changed)")
                continue
            try:
                source = p if fs is None else fs.open(p, "rb")
                meta_rows = pq.ParquetFile(source).metadata.num_rows
                if meta_rows != f.get("rows"):
                    problems.append(f"{name}: file {rel} has {meta_rows} rows, manifest says {f.get('rows')}")
                    continue
                if content:
                    t = pq.read_table(p if fs is None else fs.open(p, "rb"), page_checksum_verification=True)
                    total += table_hash_sum(t)
                    rows += t.num_rows
            except (pa.ArrowException, OSError) as exc:
                problems.append(f"{name}: file {rel} is not readable Parquet ({str(exc).splitlines()[0]})")
            if progress is not None:
                progress(1)
        if content and not any(pr.startswith(f"{name}:") for pr in problems):
            got = finish_checksum(total, rows, entry.get("schema", {}))
            if got != entry.get("checksum") or rows != entry.get("rows"):
                problems.append(f"{name}: content checksum {got} does not match the manifest's {entry.get('checksum')}")
    return problems
