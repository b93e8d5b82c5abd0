"""Lookups of canonical rows' keys in the fitted tables: per distinct key for a batch, through dicts
of the tables kept on the model for a request."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from titans_assets.lib.ml import features as F
from titans_assets.lib.ml.anomaly.canon import _col


def _positions(index: pd.Index, keys: np.ndarray, memo: dict | None = None) -> np.ndarray:
    """Position of each key in `index` (-1 when absent or missing), matching each distinct key only
    once; with `memo` (a request), through a dict of the index kept there."""
    if memo is not None and len(keys) <= F.SMALL:
        return np.array([_position(index, v, memo) for v in keys], dtype=np.int64)
    codes, uniques = pd.factorize(np.asarray(keys, dtype=object))
    if len(uniques) == 0 or len(index) == 0:
        return np.full(len(codes), -1, dtype=np.int64)
    upos = index.get_indexer(pd.Index(uniques, dtype=object))
    return np.where(codes >= 0, upos[np.maximum(codes, 0)], -1)


def _table_column(table: pd.DataFrame | None, column: str, memo: dict) -> np.ndarray | None:
    """A fitted table's column as a float array (None for an empty table), kept in `memo`."""
    entry = memo.get((id(table), column))
    if entry is None or entry[0] is not table:
        entry = memo[(id(table), column)] = (
            table,
            None if table is None or table.empty else table[column].to_numpy(dtype=float),
        )
    return entry[1]


def _position(index: pd.Index, key: Any, memo: dict) -> int:
    """`_positions` of one key through the dict of `index` kept in `memo`."""
    if key is None or (type(key) is float and key != key):
        return -1
    entry = memo.get(id(index))
    if entry is None or entry[0] is not index:
        entry = memo[id(index)] = (index, {k: i for i, k in enumerate(index)})
    return entry[1].get(key, -1)


def _lookup(
    table: pd.DataFrame,
    keys: np.ndarray,
    column: str,
    default: float = np.nan,
    pos: np.ndarray | None = None,
    memo: dict | None = None,
) -> np.ndarray:
    if memo is not None:  # a request: the table's column as an array (None: an empty table), kept
        values = _table_column(table, column, memo)
    else:
        values = None if table is None or table.empty else table[column].to_numpy(dtype=float)
    if values is None:
        return np.full(len(keys) if pos is None else len(pos), default, dtype=float)
    pos = _positions(table.index, keys, memo) if pos is None else pos
    return np.where(pos >= 0, values[np.maximum(pos, 0)], default)


class _Keys:
    """Lookups of one canonical frame's keys in the fitted tables, each key matched once per table
    (with `memo`, a request's: through dicts of the fitted tables kept there)."""

    def __init__(self, c, memo: dict | None = None):
        self.c = c
        self.memo = memo
        self.cache: dict[tuple[int, str], np.ndarray] = {}

    def __call__(self, table: pd.DataFrame, key: str, column: str, default: float = np.nan) -> np.ndarray:
        pos = self.cache.get((id(table), key))
        if pos is None:
            pos = self.cache[(id(table), key)] = _positions(table.index, _col(self.c, key), self.memo)
        return _lookup(table, None, column, default, pos=pos, memo=self.memo)
