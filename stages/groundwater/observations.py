"""A user's head observations as the (13 wells, 25 steps) array the amortized posterior takes, with its mask.

Two table layouts are accepted (CSV or Parquet, read by the stage):
- long: columns ``well``, ``period``, ``head``, one row per observed value;
- wide: a ``period`` column and one column per well.
Wells are named ``h01`` ... ``h13`` in the order of `freyberg.OBS_CELLS` (also accepted: 1..13, or ``r03c16``
style row/column names); periods run 1..25. Missing values may be NaN/empty or absent rows. Heads are in metres.
Any problem raises `UserError` with one line naming it.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from phys_ml.stages.common.errors import UserError

from . import freyberg

N_WELLS, N_STEPS = len(freyberg.OBS_CELLS), freyberg.N_PERIODS
WELL_NAMES = [f"h{i + 1:02d}" for i in range(N_WELLS)]
_ALIASES = {**{n: i for i, n in enumerate(WELL_NAMES)}, **{str(i + 1): i for i in range(N_WELLS)},
            **{f"r{r:02d}c{c:02d}": i for i, (r, c) in enumerate(freyberg.OBS_CELLS)}}


def well_index(name: object, source: str) -> int:
    key = str(name).strip().lower()
    if key.endswith(".0"):
        key = key[:-2]
    if key not in _ALIASES:
        raise UserError(f"{source}: unknown well {name!r} (known: {', '.join(WELL_NAMES)} or 1..{N_WELLS})")
    return _ALIASES[key]


def _numeric(column: pa.ChunkedArray, what: str, source: str) -> np.ndarray:
    if pa.types.is_boolean(column.type):
        raise UserError(f"{source}: column '{what}' is not numeric (it holds true/false values)")
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        return column.to_numpy(zero_copy_only=False).astype(float)
    if pa.types.is_null(column.type):
        return np.full(len(column), np.nan)
    try:
        values = pc.cast(pc.utf8_trim_whitespace(pc.cast(column, pa.string())), pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        bad = next((v for v in column.to_pylist() if v not in (None, "") and not _is_float(v)), column.type)
        raise UserError(f"{source}: column '{what}' is not numeric (value {bad!r})") from None
    return values.to_numpy(zero_copy_only=False).astype(float)


def _is_float(value: object) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _periods(column: pa.ChunkedArray, source: str) -> np.ndarray:
    values = _numeric(column, "period", source)
    if np.isnan(values).any() or not np.all(values == np.round(values)):
        raise UserError(f"{source}: every period must be a whole number in 1..{N_STEPS}")
    values = values.astype(int)
    if values.size and (values.min() < 1 or values.max() > N_STEPS):
        raise UserError(f"{source}: period {values[(values < 1) | (values > N_STEPS)][0]} is outside 1..{N_STEPS}")
    return values - 1


def parse_observations(table: pa.Table, source: str = "observations") -> tuple[np.ndarray, np.ndarray]:
    """(heads (13, 25) float with NaN where unobserved, mask (13, 25) bool) from a long or wide table."""
    names = [n.strip().lower() for n in table.column_names]
    original: dict[str, str] = {}
    for name, given in zip(names, table.column_names, strict=True):
        if name in original:  # h01 and H01: the same column name but for case
            raise UserError(f"{source}: columns '{original[name]}' and '{given}' are the same column")
        original[name] = given
    table = table.rename_columns(names)
    heads = np.full((N_WELLS, N_STEPS), np.nan)
    seen = np.zeros((N_WELLS, N_STEPS), dtype=bool)
    if {"well", "period", "head"} <= set(names):
        extra = set(names) - {"well", "period", "head"}
        if extra:
            raise UserError(f"{source}: unexpected column(s) {sorted(extra)} in a long table (well, period, head)")
        wells = [well_index(w, source) for w in table.column("well").to_pylist()]
        steps = _periods(table.column("period"), source)
        values = _numeric(table.column("head"), "head", source)
        for w, t, v in zip(wells, steps, values, strict=True):
            if seen[w, t]:
                raise UserError(f"{source}: well {WELL_NAMES[w]} period {t + 1} appears more than once")
            seen[w, t] = True
            heads[w, t] = v
    elif "period" in names:
        steps = _periods(table.column("period"), source)
        if len(set(steps.tolist())) != len(steps):
            raise UserError(f"{source}: a period appears in more than one row")
        well_cols = [n for n in names if n != "period"]
        if not well_cols:
            raise UserError(f"{source}: no well columns beside 'period'")
        named: dict[int, str] = {}
        for name in well_cols:
            w = well_index(name, source)
            if w in named:  # h01 and 1 (or r03c16): one well twice, the second would overwrite the first
                raise UserError(f"{source}: columns '{named[w]}' and '{original[name]}' both name well {WELL_NAMES[w]}")
            named[w] = original[name]
            heads[w, steps] = _numeric(table.column(name), name, source)
    else:
        raise UserError(f"{source}: expected columns (well, period, head) or a 'period' column and one column "
                        f"per well, got {table.column_names}")
    if np.isinf(heads).any():
        raise UserError(f"{source}: heads must be finite (got an infinite value)")
    mask = np.isfinite(heads)
    if not mask.any():
        raise UserError(f"{source}: every head is missing")
    return heads, mask
