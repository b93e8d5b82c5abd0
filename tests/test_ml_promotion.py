"""Promotion rules: beat the strongest baseline strictly and be at least as good as the champion; when
nothing trained beats the baseline, the baseline serves."""

from __future__ import annotations

import math

import pytest

from titans_assets.lib.ml.common import TrainingDataError, time_split
from titans_assets.lib.ml.promotion import KEEP, PROMOTE, SERVE_BASELINE, decide

BASELINES = {"majority": {"macro_f1": 0.05}, "description_lookup": {"macro_f1": 0.60}}


def test_first_challenger_that_beats_the_best_baseline_is_promoted():
    d = decide("macro_f1", True, {"macro_f1": 0.8}, BASELINES)
    assert d.beats_baseline and d.promote and d.best_baseline == "description_lookup"
    assert "no champion yet" in d.reason


def test_a_challenger_no_better_than_the_best_baseline_is_not_promoted_and_the_baseline_serves():
    d = decide("macro_f1", True, {"macro_f1": 0.60}, BASELINES)  # a tie is not a win
    assert not d.beats_baseline and not d.promote and d.action == SERVE_BASELINE
    assert d.served == "baseline:description_lookup"
    assert d.reason == (
        "not promoted: macro_f1 0.6000 does not beat description_lookup 0.6000 (higher is better); "
        "serving baseline description_lookup"
    )


def test_a_losing_challenger_keeps_a_champion_that_still_beats_the_baseline():
    d = decide("macro_f1", True, {"macro_f1": 0.55}, BASELINES, {"macro_f1": 0.70}, "3", "model")
    assert (
        d.action == KEEP
        and not d.beats_baseline
        and d.served == "model"
        and "keeping champion v3" in d.reason
    )


def test_a_champion_no_better_than_todays_baseline_is_replaced_by_that_baseline():
    """An old champion (a model, or a baseline fitted on older data) that does not beat the baseline
    refitted today on the same holdout gives way to it: the served predictor is never worse."""
    for kind in ("model", "baseline:description_lookup"):
        d = decide("macro_f1", True, {"macro_f1": 0.50}, BASELINES, {"macro_f1": 0.60}, "2", kind)
        assert d.action == SERVE_BASELINE and d.served == "baseline:description_lookup"


def test_a_challenger_that_beats_the_baseline_replaces_a_served_baseline():
    d = decide(
        "macro_f1",
        True,
        {"macro_f1": 0.65},
        BASELINES,
        {"macro_f1": 0.58},
        "2",
        "baseline:description_lookup",
    )
    assert d.action == PROMOTE and d.served == "model" and "(baseline:description_lookup)" in d.reason


def test_a_worse_challenger_does_not_replace_the_champion():
    d = decide("macro_f1", True, {"macro_f1": 0.70}, BASELINES, {"macro_f1": 0.75}, "3")
    assert d.beats_baseline and not d.promote and d.action == KEEP and "champion v3" in d.reason


def test_a_tie_with_the_champion_promotes_the_newer_model():
    assert decide("macro_f1", True, {"macro_f1": 0.75}, BASELINES, {"macro_f1": 0.75}, "3").promote


def test_lower_is_better_metrics():
    base = {"global_median": {"mae": 30.0}, "category_median": {"mae": 20.0}}
    assert decide("mae", False, {"mae": 15.0}, base, {"mae": 16.0}, "1").promote
    assert not decide("mae", False, {"mae": 17.0}, base, {"mae": 16.0}, "1").promote
    assert not decide("mae", False, {"mae": 20.0}, base).beats_baseline


def test_a_missing_metric_never_promotes():
    d = decide("mae", False, {"mae": math.nan}, {"b": {"mae": 1.0}})
    assert not d.promote and not d.beats_baseline and d.action == SERVE_BASELINE
    with pytest.raises(ValueError):
        decide("mae", False, {"mae": 1.0}, {"b": {"r2": 1.0}})


def test_time_split_cuts_on_a_date_and_keeps_the_future_for_testing():
    import pandas as pd

    frame = pd.DataFrame({"d": pd.to_datetime(["2024-01-01"] * 5 + ["2024-01-02"] * 5 + ["2024-01-03"] * 5)})
    train, test = time_split(frame, "d", test_fraction=0.3, min_test_rows=2)
    assert train["d"].max() < test["d"].min()
    assert len(train) + len(test) == 15
    with pytest.raises(TrainingDataError):
        time_split(frame.iloc[:5], "d", min_test_rows=2)
