"""Dataset storage: Parquet tables, ``manifest.json``, checksums, atomic commit, verify.

The package's public face; ``from uda.store import X`` is how the rest of uda uses it.

* :mod:`uda.store.location` — local paths and fsspec URLs, ``output_location``;
* :mod:`uda.store.manifest` — the format: ``manifest.json``, file records, checksums,
  the checks on an untrusted manifest, ``clean/`` tables;
* :mod:`uda.store.writer` — ``write_part``, ``atomic_write``, :class:`DatasetWriter`
  (into a temporary sibling, manifest last, then renamed), stale temporary folders;
* :mod:`uda.store.reader` — :class:`Dataset` and its readers, ``open_dataset``,
  ``verify``, ``diagnose_read_error``.
"""

from __future__ import annotations

from uda.store.location import (
    make_folder,
    output_location,
    parse_json,
    read_location,
    shown_path,
    split_location,
)
from uda.store.manifest import (
    CLEAN_DIR,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    MAX_MANIFEST_BYTES,
    MAX_MANIFEST_DEPTH,
    PARQUET_OPTIONS,
    FilePart,
    file_sha256,
    parse_manifest,
    read_manifest,
    resolve_inside,
    schema_dict,
    table_entry,
    with_clean_tables,
)
from uda.store.reader import (
    OPENED,
    Dataset,
    diagnose_read_error,
    open_dataset,
    verify,
)
from uda.store.writer import (
    MAX_NAME_BYTES,
    DatasetWriter,
    atomic_write,
    atomic_write_text,
    check_output_folder,
    remove_stale_temp_folders,
    stale_temp_folders,
    write_part,
)

__all__ = [
    "CLEAN_DIR",
    "Dataset",
    "DatasetWriter",
    "FORMAT",
    "FORMAT_VERSION",
    "FilePart",
    "MANIFEST",
    "MAX_MANIFEST_BYTES",
    "MAX_MANIFEST_DEPTH",
    "MAX_NAME_BYTES",
    "OPENED",
    "PARQUET_OPTIONS",
    "atomic_write",
    "atomic_write_text",
    "check_output_folder",
    "diagnose_read_error",
    "file_sha256",
    "make_folder",
    "open_dataset",
    "output_location",
    "parse_json",
    "parse_manifest",
    "read_location",
    "read_manifest",
    "remove_stale_temp_folders",
    "resolve_inside",
    "schema_dict",
    "shown_path",
    "split_location",
    "stale_temp_folders",
    "table_entry",
    "verify",
    "with_clean_tables",
    "write_part",
]
