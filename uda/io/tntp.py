"""Importer for TNTP traffic-assignment files (``_net``, ``_trips``, ``_flow``, ``_node``)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from uda.errors import UserError

#: Columns of a ``_net`` link row, in file order; the first seven are required.
NET_COLUMNS = ("init_node", "term_node", "capacity", "length", "free_flow_time", "b", "power",
               "speed", "toll", "link_type")
_REQUIRED_NET_COLUMNS = 7
_META = re.compile(r"^<\s*([^>]+?)\s*>\s*(.*)$")
_OD_ENTRY = re.compile(r"^\s*(\d+)\s*:\s*([-+0-9.eE]+)\s*$")


@dataclass
class TntpNetwork:
    """A road network read from a TNTP ``_net`` file.

    Node ids are the file's 1-based numbers; zones are nodes ``1..num_zones`` and nodes
    below ``first_thru_node`` may not be passed through by paths.

    Attributes
    ----------
    name
        File stem without ``_net`` (``SiouxFalls``).
    num_zones, num_nodes, first_thru_node
        From the metadata header.
    init_node, term_node
        Link ends (int32, 1-based node ids).
    capacity, length, free_flow_time, b, power, speed, toll
        Link attributes (float64); missing optional columns are zero.
    link_type
        Link type (int32).
    metadata
        All ``<KEY> value`` header entries as strings.
    """

    name: str
    num_zones: int
    num_nodes: int
    first_thru_node: int
    init_node: np.ndarray
    term_node: np.ndarray
    capacity: np.ndarray
    length: np.ndarray
    free_flow_time: np.ndarray
    b: np.ndarray
    power: np.ndarray
    speed: np.ndarray
    toll: np.ndarray
    link_type: np.ndarray
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def num_links(self) -> int:
        """Number of links."""
        return int(self.init_node.size)


@dataclass
class TntpTrips:
    """OD demand read from a TNTP ``_trips`` file.

    Attributes
    ----------
    demand
        Dense ``(num_zones, num_zones)`` float64 matrix; ``demand[o-1, d-1]`` is the flow
        from zone ``o`` to zone ``d``.
    total_od_flow
        The ``<TOTAL OD FLOW>`` header value (NaN if absent).
    metadata
        All ``<KEY> value`` header entries as strings.
    """

    demand: np.ndarray
    total_od_flow: float
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def num_zones(self) -> int:
        """Number of zones."""
        return int(self.demand.shape[0])


def _fail(path: Path, line: int, problem: str) -> UserError:
    return UserError(f"{path}, line {line}: {problem}")


def _read_lines(path: str | os.PathLike) -> tuple[Path, list[str]]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        msg = f"TNTP file {path} does not exist; check the path"
        raise UserError(msg) from None
    except IsADirectoryError:
        msg = f"TNTP path {path} is a folder; give the file (for example <Name>_net.tntp)"
        raise UserError(msg) from None
    return path, text.splitlines()


def _split_metadata(path: Path, lines: list[str], *, required: bool) -> tuple[dict[str, str], int]:
    """Header entries and the index of the first line after ``<END OF METADATA>``."""
    meta: dict[str, str] = {}
    for i, raw in enumerate(lines):
        line = raw.strip()
        if not line or line.startswith("~"):
            continue
        m = _META.match(line)
        if m is None:
            if required:
                raise _fail(path, i + 1, f"expected a <KEY> value header line or <END OF METADATA>, got {line[:40]!r}")
            return meta, 0
        key = m.group(1).upper()
        if key == "END OF METADATA":
            return meta, i + 1
        meta[key] = m.group(2).split("~")[0].strip()
    if required or meta:
        raise _fail(path, len(lines), "no <END OF METADATA> line; the header must end with it")
    return meta, 0


def _meta_int(path: Path, meta: dict[str, str], key: str, *, default: int | None = None) -> int:
    if key not in meta:
        if default is not None:
            return default
        msg = f"{path}: header has no <{key}> entry; add it before <END OF METADATA>"
        raise UserError(msg)
    try:
        return int(float(meta[key]))
    except ValueError:
        msg = f"{path}: header <{key}> is {meta[key]!r}, not a number"
        raise UserError(msg) from None


def _data_rows(path: Path, lines: list[str], start: int):
    """(line number, fields) of data rows: comments after ``~`` and ``;`` removed."""
    for i in range(start, len(lines)):
        line = lines[i].split("~", 1)[0].replace(";", " ").strip()
        if line:
            yield i + 1, line.split()


def read_net(path: str | os.PathLike) -> TntpNetwork:
    """Read a TNTP ``_net`` file.

    Parameters
    ----------
    path
        The ``<Name>_net.tntp`` file.

    Returns
    -------
    TntpNetwork
        Links in file order.

    Raises
    ------
    UserError
        Malformed header or row (naming file and line), node ids outside
        ``1..NUMBER OF NODES``, a link count different from ``<NUMBER OF LINKS>``,
        negative capacity / free-flow time / b / power, or zero capacity on a link whose
        cost depends on flow (``b > 0``).
    """
    path, lines = _read_lines(path)
    meta, start = _split_metadata(path, lines, required=True)
    num_zones = _meta_int(path, meta, "NUMBER OF ZONES")
    num_nodes = _meta_int(path, meta, "NUMBER OF NODES")
    num_links = _meta_int(path, meta, "NUMBER OF LINKS")
    first_thru = _meta_int(path, meta, "FIRST THRU NODE", default=1)
    if num_zones > num_nodes:
        msg = f"{path}: <NUMBER OF ZONES> {num_zones} exceeds <NUMBER OF NODES> {num_nodes}"
        raise UserError(msg)
    rows: list[list[float]] = []
    for lineno, fields in _data_rows(path, lines, start):
        if len(fields) < _REQUIRED_NET_COLUMNS:
            raise _fail(path, lineno, f"expected at least {_REQUIRED_NET_COLUMNS} columns "
                        f"({', '.join(NET_COLUMNS[:_REQUIRED_NET_COLUMNS])}), got {len(fields)}")
        if len(fields) > len(NET_COLUMNS):
            raise _fail(path, lineno, f"expected at most {len(NET_COLUMNS)} columns, got {len(fields)}")
        try:
            values = [float(f) for f in fields]
        except ValueError:
            bad = next(f for f in fields if not _is_number(f))
            raise _fail(path, lineno, f"{bad!r} is not a number") from None
        if not all(np.isfinite(values)):
            raise _fail(path, lineno, "values must be finite")
        u, v = values[0], values[1]
        if u != int(u) or v != int(v) or not (1 <= u <= num_nodes and 1 <= v <= num_nodes):
            raise _fail(path, lineno, f"link {fields[0]} -> {fields[1]} names a node outside 1..{num_nodes}")
        cap, fft, b, power = values[2], values[4], values[5], values[6]
        for name, value in (("capacity", cap), ("free_flow_time", fft), ("b", b), ("power", power)):
            if value < 0:
                raise _fail(path, lineno, f"negative {name} {value:g}; it must be >= 0")
        if cap == 0 and b > 0:
            raise _fail(path, lineno, "capacity 0 on a link with b > 0; give a positive capacity or b = 0")
        rows.append(values + [0.0] * (len(NET_COLUMNS) - len(values)))
    if len(rows) != num_links:
        msg = f"{path}: <NUMBER OF LINKS> is {num_links} but {len(rows)} link rows were read"
        raise UserError(msg)
    data = np.array(rows, dtype=np.float64).reshape(-1, len(NET_COLUMNS))
    col = {name: data[:, i] for i, name in enumerate(NET_COLUMNS)}
    stem = path.name
    name = stem[: -len("_net.tntp")] if stem.lower().endswith("_net.tntp") else path.stem
    return TntpNetwork(
        name=name, num_zones=num_zones, num_nodes=num_nodes, first_thru_node=first_thru,
        init_node=col["init_node"].astype(np.int32), term_node=col["term_node"].astype(np.int32),
        capacity=col["capacity"].copy(), length=col["length"].copy(),
        free_flow_time=col["free_flow_time"].copy(), b=col["b"].copy(), power=col["power"].copy(),
        speed=col["speed"].copy(), toll=col["toll"].copy(),
        link_type=col["link_type"].astype(np.int32), metadata=meta,
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_trips(path: str | os.PathLike) -> TntpTrips:
    """Read a TNTP ``_trips`` file into a dense OD matrix.

    Parameters
    ----------
    path
        The ``<Name>_trips.tntp`` file: ``Origin k`` blocks of ``dest : flow;`` entries.

    Returns
    -------
    TntpTrips

    Raises
    ------
    UserError
        Malformed entries (naming file and line), zones outside ``1..NUMBER OF ZONES``,
        negative or non-finite flows, entries before the first ``Origin`` line.
    """
    path, lines = _read_lines(path)
    meta, start = _split_metadata(path, lines, required=True)
    zones = _meta_int(path, meta, "NUMBER OF ZONES")
    total = float(meta["TOTAL OD FLOW"]) if _is_number(meta.get("TOTAL OD FLOW", "x")) else float("nan")
    demand = np.zeros((zones, zones), dtype=np.float64)
    origin = 0
    for i in range(start, len(lines)):
        lineno = i + 1
        line = lines[i].split("~", 1)[0].strip()
        if not line:
            continue
        if line.lower().startswith("origin"):
            parts = line.split()
            if len(parts) != 2 or not parts[1].isdigit():
                raise _fail(path, lineno, f"expected 'Origin <zone>', got {line[:40]!r}")
            origin = int(parts[1])
            if not 1 <= origin <= zones:
                raise _fail(path, lineno, f"origin zone {origin} is outside 1..{zones}")
            continue
        if origin == 0:
            raise _fail(path, lineno, "OD entries before the first 'Origin <zone>' line")
        chunks = line.split(";")
        if chunks[-1].strip():
            raise _fail(path, lineno, f"entry {chunks[-1].strip()[:30]!r} does not end with ';'")
        for chunk in chunks[:-1]:
            if not chunk.strip():
                continue
            m = _OD_ENTRY.match(chunk)
            if m is None or not _is_number(m.group(2)):
                raise _fail(path, lineno, f"expected 'zone : flow;', got {chunk.strip()[:30]!r}")
            dest, value = int(m.group(1)), float(m.group(2))
            if not 1 <= dest <= zones:
                raise _fail(path, lineno, f"destination zone {dest} is outside 1..{zones}")
            if not np.isfinite(value) or value < 0:
                raise _fail(path, lineno, f"OD flow {value:g} must be finite and >= 0")
            demand[origin - 1, dest - 1] += value
    return TntpTrips(demand=demand, total_od_flow=total, metadata=meta)


def _read_table(path: str | os.PathLike, ncols: int, what: str) -> tuple[Path, np.ndarray]:
    """Rows of ``ncols`` numbers, skipping an optional header line of column names."""
    path, lines = _read_lines(path)
    meta, start = _split_metadata(path, lines, required=False)
    rows = []
    for lineno, fields in _data_rows(path, lines, start):
        if not rows and not _is_number(fields[0]):
            continue  # column-name header line
        if len(fields) != ncols:
            raise _fail(path, lineno, f"expected {ncols} columns ({what}), got {len(fields)}")
        try:
            rows.append([float(f) for f in fields])
        except ValueError:
            bad = next(f for f in fields if not _is_number(f))
            raise _fail(path, lineno, f"{bad!r} is not a number") from None
    return path, np.array(rows, dtype=np.float64).reshape(-1, ncols)


def read_flow(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a TNTP ``_flow`` file (best-known link flows).

    Returns
    -------
    dict
        ``init_node``, ``term_node`` (int32), ``volume`` and ``cost`` (float64).
    """
    _, data = _read_table(path, 4, "from, to, volume, cost")
    return {"init_node": data[:, 0].astype(np.int32), "term_node": data[:, 1].astype(np.int32),
            "volume": data[:, 2].copy(), "cost": data[:, 3].copy()}


def read_node(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a TNTP ``_node`` file (node coordinates).

    Returns
    -------
    dict
        ``node`` (int32), ``x`` and ``y`` (float64).
    """
    _, data = _read_table(path, 3, "node, x, y")
    return {"node": data[:, 0].astype(np.int32), "x": data[:, 1].copy(), "y": data[:, 2].copy()}


def find_files(folder: str | os.PathLike) -> dict[str, Path]:
    """The TNTP files in ``folder``, keyed ``net``, ``trips``, ``flow``, ``node``.

    Raises
    ------
    UserError
        If the folder is missing or does not hold exactly one ``*_net.tntp`` and one
        ``*_trips.tntp`` file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        msg = f"TNTP folder {folder} does not exist; give the folder holding <Name>_net.tntp and <Name>_trips.tntp"
        raise UserError(msg)
    found: dict[str, Path] = {}
    for kind in ("net", "trips", "flow", "node"):
        matches = sorted(p for p in folder.iterdir() if p.name.lower().endswith(f"_{kind}.tntp"))
        if len(matches) > 1:
            msg = f"{folder} holds several *_{kind}.tntp files ({', '.join(p.name for p in matches)}); keep one network per folder"
            raise UserError(msg)
        if matches:
            found[kind] = matches[0]
    for kind in ("net", "trips"):
        if kind not in found:
            msg = f"{folder} has no *_{kind}.tntp file; a TNTP folder needs <Name>_net.tntp and <Name>_trips.tntp"
            raise UserError(msg)
    return found


def read_folder(folder: str | os.PathLike) -> tuple[TntpNetwork, TntpTrips]:
    """Read the network and trips of a TNTP folder and check they fit together.

    Raises
    ------
    UserError
        As :func:`find_files`, :func:`read_net`, :func:`read_trips`, or if the zone counts
        of the two files differ.
    """
    files = find_files(folder)
    net = read_net(files["net"])
    trips = read_trips(files["trips"])
    if trips.num_zones != net.num_zones:
        msg = (f"{files['trips']} has {trips.num_zones} zones but {files['net']} has "
               f"{net.num_zones}; use files of the same network")
        raise UserError(msg)
    return net, trips
