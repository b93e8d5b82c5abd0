"""What every model module returns, so the training assets, promotion and serving stay generic.

Each model module (category, amount, anomaly, cashflow) exposes:

    NAME: str                      registry name, e.g. "titans_category"
    PRIMARY_METRIC: str            the metric promotion compares
    HIGHER_IS_BETTER: bool
    train(data, **params) -> TrainResult
    score(model, holdout) -> dict[str, float]   any model (a challenger or the loaded champion)
                                                on a holdout, same metric names as TrainResult.metrics

and its fitted model object has `predict(frame: pd.DataFrame) -> pd.DataFrame`, the serving output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd


class TrainingDataError(ValueError):
    """The data cannot train this model (too few rows or days); the message says what is missing."""


@dataclass
class TrainResult:
    model: Any  # the fitted model object (picklable; has predict(frame) -> DataFrame)
    metrics: dict[str, float]  # the model on the holdout
    baselines: dict[str, dict[str, float]]  # baseline name -> its metrics on the same holdout
    params: dict[str, Any]  # hyper-parameters and choices, logged as MLflow params
    data_window: dict[str, Any]  # train/test date bounds and row counts
    holdout: Any  # what score(model, holdout) needs to rescore another model on the same data
    figures: dict[str, Any] = field(default_factory=dict)  # artifact name (.png) -> matplotlib Figure
    notes: list[str] = field(default_factory=list)  # honest caveats (small data, skipped candidates)
    # baseline name -> the fitted baseline itself, with the model's serving API (predict /
    # predict_columns, cashflow: forecast + summary), so the best one can be registered and served
    # when the model loses; score(baseline_models[b], holdout) reproduces baselines[b].
    baseline_models: dict[str, Any] = field(default_factory=dict)

    def best_baseline(self, primary: str, higher_is_better: bool) -> tuple[str, float]:
        """The strongest baseline on the primary metric: (name, value)."""
        scored = [(name, m[primary]) for name, m in self.baselines.items() if pd.notna(m.get(primary))]
        if not scored:
            raise ValueError(f"no baseline reports {primary}")
        return (max if higher_is_better else min)(scored, key=lambda kv: kv[1])


def baseline_result(result: TrainResult, name: str) -> TrainResult:
    """The baseline `name` of a training as a TrainResult of its own: what is logged and registered
    when that baseline is to be served (its metrics are the ones it scored on the same holdout)."""
    return TrainResult(
        model=result.baseline_models[name],
        metrics=dict(result.baselines[name]),
        baselines=result.baselines,
        params={"baseline": name},
        data_window=result.data_window,
        holdout=result.holdout,
        notes=[f"baseline {name}, fitted on the same training data as the model it beat"],
    )


def time_split(
    frame: pd.DataFrame, date_col: str, test_fraction: float = 0.2, min_test_rows: int = 20
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train on the past, test on the most recent period: the cut is a date, so no day is split.

    The test set is the latest days holding about `test_fraction` of the rows (at least
    `min_test_rows`, and the train set keeps at least one day)."""
    if frame.empty:
        raise TrainingDataError("no rows to split")
    ordered = frame.sort_values(date_col, kind="stable")
    dates = pd.to_datetime(ordered[date_col])
    n_test = max(min_test_rows, int(round(len(ordered) * test_fraction)))
    if n_test >= len(ordered):
        raise TrainingDataError(f"{len(ordered)} rows cannot make a train and a test set of {min_test_rows}+")
    cut = dates.iloc[len(ordered) - n_test]
    train_mask = (dates < cut).to_numpy()
    if not train_mask.any():
        raise TrainingDataError("all rows fall on the last day: nothing to train on")
    return ordered[train_mask], ordered[~train_mask]


def window_of(train: pd.DataFrame, test: pd.DataFrame, date_col: str) -> dict[str, Any]:
    """The data window logged with every run."""

    def bounds(df):
        d = pd.to_datetime(df[date_col])
        return (d.min().date().isoformat(), d.max().date().isoformat()) if len(df) else (None, None)

    (tr0, tr1), (te0, te1) = bounds(train), bounds(test)
    return {
        "train_start": tr0,
        "train_end": tr1,
        "test_start": te0,
        "test_end": te1,
        "train_rows": len(train),
        "test_rows": len(test),
    }


def cache_unit_row(cache: dict, limit: int, text: str, columns: list[int], values) -> tuple[list[int], Any]:
    """Scale one sparse text row (column indices, float64 values) to unit L2 norm the way
    scikit-learn's `normalize` does (sum of squares in order), freeze it and cache it under `text`
    (the cache is emptied when it reaches `limit`): the small-request paths of the text models."""
    import math

    total = 0.0
    for v in values.tolist():
        total += v * v
    if total != 0.0:
        values /= math.sqrt(total)
    values.flags.writeable = False
    if len(cache) >= limit:
        cache.clear()
    cache[text] = (columns, values)
    return columns, values
