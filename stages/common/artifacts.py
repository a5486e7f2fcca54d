"""Artifact I/O: Parquet with file-level metadata, JSON metrics, torch state, all written atomically.

Nothing here writes a timestamp, so the same inputs give the same bytes.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import UserError

META_KEY = b"phys_ml"
COMPRESSION = "zstd"


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``, on error remove it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _package_version() -> str:
    from phys_ml import __version__

    return __version__


def artifact_metadata(*, task: str, stage: str, seed: int | None, params: Any, extra: dict | None = None) -> dict:
    """The metadata stored with every Parquet artifact."""
    meta = {"task": task, "stage": stage, "seed": seed, "params": params, "package_version": _package_version()}
    if extra:
        meta.update(extra)
    return meta


def write_parquet(
    table: pa.Table,
    path: str | Path,
    *,
    task: str,
    stage: str,
    seed: int | None,
    params: Any,
    extra: dict | None = None,
) -> Path:
    """Write ``table`` (zstd) with file-level metadata under the key ``phys_ml``; returns the path."""
    meta = artifact_metadata(task=task, stage=stage, seed=seed, params=params, extra=extra)
    schema_meta = dict(table.schema.metadata or {})
    schema_meta[META_KEY] = json.dumps(meta, sort_keys=True, default=_json_default).encode()
    table = table.replace_schema_metadata(schema_meta)
    path = Path(path)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression=COMPRESSION)
    return path


def read_parquet(
    path: str | Path,
    columns: list[str] | None = None,
    *,
    required: Iterable[str] | dict[str, pa.DataType] | None = None,
) -> tuple[pa.Table, dict]:
    """Read a table and its phys_ml metadata, checking its schema against what the caller expects.

    ``columns`` (read only these) and ``required`` (names, or names with their Arrow types) must be in the file;
    a missing, unreadable or wrong-schema file is a UserError naming the path and what is wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} not found: run the stage that writes it first")
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise UserError(f"{path} is not a readable Parquet file ({exc})") from None
    check_schema(schema, path, [*(columns or []), *(required or [])],
                 required if isinstance(required, dict) else {})
    try:
        table = pq.read_table(path, columns=columns)
    except (pa.ArrowInvalid, OSError) as exc:
        raise UserError(f"{path} is not a readable Parquet file ({exc})") from None
    raw = (table.schema.metadata or {}).get(META_KEY)
    meta = json.loads(raw) if raw else {}
    return table.replace_schema_metadata(None), meta


def check_schema(schema: pa.Schema, path: str | Path, names: Iterable[str],
                 types: dict[str, pa.DataType] | None = None) -> None:
    """UserError naming ``path`` when a column of ``names`` is missing or has another type than ``types`` says."""
    missing = [n for n in dict.fromkeys(names) if n not in schema.names]
    if missing:
        raise UserError(f"{path} lacks the column(s) {', '.join(missing)} "
                        f"(has: {', '.join(schema.names) or 'none'}); was it written by this stage's producer?")
    for name, want in (types or {}).items():
        got = schema.field(name).type
        if got != want:
            raise UserError(f"{path}: column {name} has type {got}, expected {want}")


def fixed_size_list(values: np.ndarray) -> pa.FixedSizeListArray:
    """A (rows, n) array as a fixed-size list column (row-major; reshape back with ``fixed_size_to_numpy``)."""
    values = np.ascontiguousarray(values)
    rows = values.shape[0]
    flat = values.reshape(rows, -1)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat.ravel()), flat.shape[1])


def fixed_size_to_numpy(column: pa.ChunkedArray | pa.Array, shape: tuple[int, ...] = ()) -> np.ndarray:
    """The inverse of ``fixed_size_list``: (rows, *shape) array."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    flat = column.flatten().to_numpy(zero_copy_only=False)
    return flat.reshape(len(column), *shape) if shape else flat.reshape(len(column), -1)


def list_column(rows: list[np.ndarray]) -> pa.ListArray:
    """Ragged rows (each a 1-D or (len, k) array) as a list column of flat values."""
    return pa.array([np.asarray(r).ravel() for r in rows])


def list_column_to_numpy(column: pa.ChunkedArray | pa.Array, width: int = 1) -> list[np.ndarray]:
    """The inverse of ``list_column``: a list of (len,) or (len, width) arrays."""
    out = []
    for value in column.to_pylist():
        arr = np.asarray(value)
        out.append(arr.reshape(-1, width) if width > 1 else arr)
    return out


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "model_dump"):
        return obj.model_dump()
    raise TypeError(f"cannot store {type(obj).__name__} in JSON")


def write_json(path: str | Path, obj: Any) -> Path:
    """Sorted, indented JSON written atomically (metrics files)."""
    path = Path(path)
    text = json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


def read_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} not found: run the stage that writes it first")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None


def save_torch(obj: Any, path: str | Path) -> Path:
    """torch.save through a buffer, so the file appears whole or not at all."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())
    return path


def load_torch(path: str | Path, map_location: Any = "cpu") -> Any:
    import torch

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} not found: run the stage that writes it first")
    return torch.load(path, map_location=map_location, weights_only=True)
