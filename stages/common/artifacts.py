"""Artifact I/O: Parquet with file-level metadata, JSON metrics, torch state, all written atomically.

Nothing here writes a timestamp, so the same inputs give the same bytes.
"""

from __future__ import annotations

import contextlib
import errno
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


def require_file(path: str | Path, hint: str = "run the stage that writes it first") -> Path:
    """``path`` as a Path when it is a file; a UserError saying what is there instead (a folder, nothing)."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder, not a file")
    if not path.is_file():
        raise UserError(f"{path} not found" + (f": {hint}" if hint else ""))
    return path


def check_output_dir(path: str | Path, what: str = "--data-dir", _folder: Path | None = None) -> None:
    """A folder that outputs go to (made when missing): no file may sit at it or above it, and the nearest
    existing folder must be writable. Checked before any work, so bad output paths are bad input (exit 2)."""
    path = Path(path)
    for parent in (_folder if _folder is not None else path, *(_folder or path).parents):
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"{what} {path}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise UserError(f"{what} {path}: {parent} is not writable")
            return


def check_output_file(path: str | Path, what: str = "--out") -> None:
    """An output file: not a folder, not below a file, in a writable folder (checked before any work)."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{what} {path} is a folder; give a file name")
    check_output_dir(path, what, _folder=path.parent)


@contextlib.contextmanager
def reading(path: str | Path, what: str) -> Iterator[None]:
    """Around the code that rebuilds an object from a loaded file (a model from its state dict): a file whose
    content does not fit (missing keys, other shapes) is a UserError naming it, not a crash."""
    try:
        yield
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        raise UserError(f"{path} is not {what} ({type(exc).__name__}: {first})") from None


# Errors of the file system that say the output path is wrong (bad input), not that the machine failed.
_PATH_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENOENT)


def _unwritable(path: Path, exc: OSError) -> UserError:
    return UserError(f"cannot write {path}: {exc.strerror or exc}")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``, on error remove it.

    An output path that cannot be written (a folder there, a file above it, no permission) is a UserError
    naming it; other OS errors (a full disk) pass through as they are.
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"cannot write {path}: it is a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        if exc.errno in _PATH_ERRNOS:
            raise _unwritable(path, exc) from None
        raise
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
    path = require_file(path)
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
        if want is not None and not _same_type(got, want):
            raise UserError(f"{path}: column {name} {_type_mismatch(got, want)}")


def _same_type(got: pa.DataType, want: pa.DataType) -> bool:
    """Types equal up to the name of a list's element field (writers name it "item" or "element")."""
    if pa.types.is_fixed_size_list(want):
        return (pa.types.is_fixed_size_list(got) and got.list_size == want.list_size
                and got.value_type == want.value_type)
    return got == want


def _type_mismatch(got: pa.DataType, want: pa.DataType) -> str:
    """What is wrong with a column's type, in words (list lengths said as such)."""
    if pa.types.is_fixed_size_list(want):
        if pa.types.is_fixed_size_list(got) and got.value_type == want.value_type:
            return f"holds lists of {got.list_size} values, expected {want.list_size}"
        if pa.types.is_list(got) or pa.types.is_large_list(got):
            return f"holds lists of varying length ({got}), expected lists of {want.list_size} {want.value_type} values"
    return f"has type {got}, expected {want}"


def check_labels(values: Iterable, allowed: Iterable[str], path: str | Path, column: str) -> None:
    """UserError naming ``path`` and the first value of ``column`` that is not one of ``allowed``."""
    allowed, values = tuple(allowed), list(values)
    bad = next((v for v in values if v not in allowed), None)
    if bad is not None or any(v is None for v in values):
        raise UserError(f"{path}: column {column} holds {bad!r}, expected one of {', '.join(map(str, allowed))}")


def check_finite(values: np.ndarray, path: str | Path, column: str) -> None:
    """UserError naming ``path`` and ``column`` when a value is NaN or infinite."""
    values = np.asarray(values, dtype=float)
    if not np.isfinite(values).all():
        raise UserError(f"{path}: column {column} holds {int((~np.isfinite(values)).sum())} NaN or infinite "
                        "value(s)")


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
    path = require_file(path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except UnicodeDecodeError:
        raise UserError(f"{path} is not a text (UTF-8) file") from None


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
    """A torch file saved by `save_torch` (weights only); a truncated or foreign file is a UserError naming it."""
    import pickle

    import torch

    path = require_file(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError, KeyError, AttributeError, ImportError,
            TypeError, IndexError, UnicodeDecodeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0].split(". ")[0][:120]
        raise UserError(f"{path} is not a readable torch file saved by phys-ml ({first})") from None
