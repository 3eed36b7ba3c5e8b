"""Where data lives: local paths and fsspec URLs, folders, and output written through a local path.

A location is a local path, a ``file://`` URL (both local) or any other fsspec URL
(``memory://``, ``s3://`` ...), opened with fsspec and the backend it needs.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from uda.errors import UserError


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


def parse_json(text: bytes | str, where: str, what: str, fix: str, *, limit: int,
               parse_constant: Callable[[str], Any] | None = None) -> Any:
    """The JSON document in ``text`` (untrusted input), with one-line errors.

    Parameters
    ----------
    text
        The document, as read.
    where
        Where it was read from, as the errors name it.
    what
        What it should be, with its article (``"a manifest"``), as the errors name it.
    fix
        What to do about it; ends every error.
    limit
        Largest accepted length of ``text``.
    parse_constant
        Passed to :func:`json.loads` (called on ``NaN`` and ``Infinity``); what it
        raises is not caught here.

    Returns
    -------
    Any
        The parsed value.

    Raises
    ------
    UserError
        If ``text`` is longer than ``limit``, is not JSON (or not UTF-8), or is nested
        deeper than the parser's recursion limit.
    """
    if len(text) > limit:
        msg = f"{where} is {len(text):,} bytes, more than {what} can be ({limit:,}); {fix}"
        raise UserError(msg)
    try:
        return json.loads(text, parse_constant=parse_constant)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        msg = f"{where} is not valid JSON ({exc.__class__.__name__}); {fix}"
        raise UserError(msg) from None
    except RecursionError:
        msg = f"{where} is nested deeper than {what} can be; {fix}"
        raise UserError(msg) from None


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


def shown_path(location: str | os.PathLike, local_root: Path, path: str | os.PathLike) -> str:
    """How to show ``path``, written under ``local_root`` for ``location``: its final URL if remote."""
    if split_location(location)[0] is None:
        return str(path)
    rel = Path(path).relative_to(local_root).as_posix()
    return os.fspath(location).rstrip("/") + ("" if rel == "." else f"/{rel}")
