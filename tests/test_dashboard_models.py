"""The model page: permutation importance (lib/ml/importance.py), the registry history it reads
(lib/dashboard/models.py), and the page itself rendered by Streamlit and by headless Chromium on a
real MLflow registry (PostgreSQL) holding real trainings and promotion decisions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from titans_assets.lib.ml import importance as I


# ---------------------------------------------------------------------------------------------- importance
def _score(model, holdout):
    """A real scorer: mean absolute error of `y` against 2*a + 0*b (b is ignored by the 'model')."""
    frame, y = holdout if isinstance(holdout, tuple) else (holdout, holdout["y"].to_numpy())
    return {"mae": float(np.mean(np.abs(2 * frame["a"].to_numpy() - y)))}


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    return pd.DataFrame({"a": a, "b": rng.normal(size=n), "y": 2 * a})


@pytest.mark.parametrize("seed", range(5))
def test_a_column_the_model_reads_matters_and_one_it_ignores_does_not(seed):
    frame = _frame(300, seed)
    out = I.permutation_importance(_score, None, frame, ["b", "a", "missing"], "mae", higher_is_better=False,
                                   repeats=3, seed=seed)
    assert out["supported"] and out["base_score"] == 0.0 and out["rows"] == 300 and out["repeats"] == 3
    by = {f["feature"]: f for f in out["features"]}
    assert set(by) == {"a", "b"}  # a column the holdout lacks is not invented
    assert by["a"]["importance_mean"] > 1.0 and by["b"]["importance_mean"] == 0.0 and by["b"]["importance_std"] == 0.0
    assert [f["feature"] for f in out["features"]] == ["a", "b"]  # most important first


def test_tuple_holdouts_keep_their_labels_aligned_when_sampled():
    frame = _frame(900, 1)
    out = I.permutation_importance(_score, None, (frame.drop(columns="y"), frame["y"].to_numpy()), ["a", "b"],
                                   "mae", higher_is_better=False, max_rows=200)
    assert out["rows"] == 200 and out["base_score"] == 0.0  # rows and labels sampled together
    assert I.worsening(0.8, 0.6, higher_is_better=True) == pytest.approx(0.2)
    assert I.worsening(10.0, 12.0, higher_is_better=False) == 2.0


def test_a_series_holdout_says_it_has_no_columns():
    out = I.permutation_importance(_score, None, pd.Series([1.0, 2.0]), ["a"], "mase", higher_is_better=False)
    assert out == {"supported": False, "metric": "mase",
                   "reason": "the holdout is a single series (no input columns to permute)"}
