"""Reading: :class:`Dataset` (Polars scans, Dask frames, footers), ``open_dataset``, ``verify``.

Every read goes through the manifest: a table's files are checked against it (size,
footer, row count) before they are read, and ``uda verify`` re-checks every byte.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from uda.errors import UserError
from uda.kernels.checksum import finish_checksum, table_hash_sum
from uda.store.manifest import (
    CLEAN_DIR,
    MANIFEST,
    file_sha256,
    read_manifest,
    resolve_inside,
    with_clean_tables,
)

if TYPE_CHECKING:
    import dask.dataframe as dd
    import polars as pl


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
