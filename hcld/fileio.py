"""Small file utilities every stage shares: atomic writes, content hashes, checked parquet I/O.

An atomic write goes to a sibling temporary file that is renamed over the target only once it is
complete, so a reader (or a process killed mid-write) sees the old file or the new one, never half
of one. `durable=True` also fsyncs the file and its folder, for tables that must survive a crash.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hcld.errors import DataError

if TYPE_CHECKING:  # polars only where used (the dependency rule, tests/test_packaging.py)
    import polars as pl


@contextmanager
def atomic_path(path: Path | str, *, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path`, on failure it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        if durable:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
        if durable:  # make the rename itself durable
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path | str, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: Path | str, value: Any, **dumps: Any) -> None:
    write_text_atomic(path, json.dumps(value, **dumps))


def json_hash(value: Any) -> str:
    """sha256 (hex) of the canonical JSON of `value`: equal for equal content, whatever the key order."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def file_sha256(path: Path | str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def write_parquet_atomic(df: pl.DataFrame, path: Path | str) -> None:
    with atomic_path(path) as tmp:
        df.write_parquet(tmp)


def read_parquet_checked(path: Path, what: str, hint: str) -> pl.DataFrame:
    """Read a parquet file of ours; a missing or damaged one is a DataError naming it and `what`."""
    import polars as pl

    if not path.is_file():
        raise DataError(f"{path}: {what} not found ({hint})")
    try:
        return pl.read_parquet(path)
    except Exception as err:  # polars raises several exception types for a damaged file
        raise DataError(f"{path}: not a readable parquet {what} ({err})") from err
