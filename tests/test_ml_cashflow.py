"""The cash-flow forecaster (titans_assets.lib.ml.cashflow): pure unit tests, no database.

Fast candidate subsets are used where the test is about mechanics; the generated two-year ledger
checks that the chosen model beats the seasonal naive(7) baseline on realistic data."""

from __future__ import annotations

import datetime as dt
import math
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from titans_assets.lib.generator import generate, read_export
from titans_assets.lib.ml import cashflow as cf
from titans_assets.lib.ml.common import TrainingDataError, TrainResult

FAST = ("seasonal_naive_7", "mean_28", "ets", "gbm")
END = dt.date(2026, 6, 30)


def synthetic(days: int, seed: int = 0) -> pd.DataFrame:
    """Weekly pattern (weekdays in, weekends out), paydays on the 1st/15th, rent, slow trend, noise."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range(end=END, periods=days, freq="D")
    weekly = np.array([900.0, 700.0, 600.0, 750.0, 1000.0, -300.0, -500.0])[dates.day_of_week]
    payday = np.where(np.isin(dates.day, (1, 15)), 3000.0, 0.0)
    rent = np.where(dates.day == 1, -2500.0, 0.0)
    trend = np.linspace(0.0, 150.0, days)
    values = weekly + payday + rent + trend + rng.normal(0.0, 350.0, days)
    return pd.DataFrame({"metric_date": dates.date, "net_flow": values.round(2)})


def sparse_expenses(days: int = 120, seed: int = 3) -> pd.DataFrame:
    """About four months of an expense-only account: most days empty, heavy-tailed spends."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range(end=END, periods=days, freq="D")
    values = np.where(rng.random(days) < 0.3, -np.round(rng.lognormal(4.0, 1.0, days), 2), 0.0)
    return pd.DataFrame({"metric_date": dates.date, "net_flow": values})


def relative_width(result: TrainResult) -> float:
    fc = result.model.forecast(30)
    y = result.holdout["net_flow"].to_numpy()
    return float((fc["upper"] - fc["lower"]).mean() / np.abs(y).mean())


@pytest.fixture(scope="module")
def long_series() -> pd.DataFrame:
    return synthetic(400)


@pytest.fixture(scope="module")
def trained(long_series) -> TrainResult:
    return cf.train(long_series, candidates=FAST)


@pytest.fixture(scope="module")
def small() -> TrainResult:
    return cf.train(sparse_expenses(), candidates=FAST)


def test_module_contract():
    assert cf.NAME == "titans_cashflow"
    assert cf.PRIMARY_METRIC == "mase" and cf.HIGHER_IS_BETTER is False


def test_synthetic_beats_seasonal_naive_with_finite_metrics(trained):
    m, base = trained.metrics, trained.baselines["seasonal_naive_7"]
    assert set(cf.METRIC_NAMES) <= set(m) and set(cf.METRIC_NAMES) <= set(base)
    assert all(math.isfinite(v) for v in m.values()), m
    assert m["mase"] <= 1.05 * base["mase"]
    assert m["mase"] < base["mase"]  # a weekly pattern plus paydays: learnable beyond the last week
    assert {f"cand_{c}_mase" for c in FAST} <= set(m)
    assert m["mase"] == min(m[f"cand_{c}_mase"] for c in FAST)
    assert 0.7 <= m["interval_coverage"] <= 1.0
    assert set(trained.baselines) == {"seasonal_naive_7", "mean_28"}
    assert trained.best_baseline(cf.PRIMARY_METRIC, cf.HIGHER_IS_BETTER)[0] in trained.baselines
    w = trained.data_window
    assert (w["days"], w["n_origins"], w["horizon"], w["origin_step"]) == (400, 6, 30, 30)
    assert (w["series_start"], w["series_end"]) == ((END - dt.timedelta(399)).isoformat(), END.isoformat())
    assert trained.params["method"] == trained.model.method
    fig = trained.figures["backtest_forecast.png"]
    assert len(fig.axes) == 1 and fig.axes[0].lines


def test_forecast_shape_dates_and_intervals(trained):
    model = trained.model
    fc = model.forecast(30)
    assert list(fc.columns) == ["date", "predicted_amount", "lower", "upper"]
    assert len(fc) == 30
    assert fc["date"].iloc[0] == pd.Timestamp(END) + pd.Timedelta(days=1)
    assert (fc["date"].diff().dropna() == pd.Timedelta(days=1)).all()
    assert (fc["lower"] <= fc["predicted_amount"]).all() and (fc["predicted_amount"] <= fc["upper"]).all()
    for h in (1, 365):
        f = model.forecast(h)
        assert len(f) == h and f[["predicted_amount", "lower", "upper"]].notna().all().all()
    year = model.forecast(365)
    width = (year["upper"] - year["lower"]).to_numpy()
    assert np.all(np.diff(width) >= -1e-6), "intervals must not shrink with the horizon"
    assert width[-1] > width[0]
    pd.testing.assert_frame_equal(year.head(30), fc)
    narrow = model.forecast(30, level=0.5)
    assert ((narrow["upper"] - narrow["lower"]) <= (fc["upper"] - fc["lower"]) + 1e-9).all()
    for bad in (0, 366, 2.5):
        with pytest.raises(ValueError):
            model.forecast(bad)


def test_forecast_without_seasonality_flattens_the_week(trained):
    seasonal = trained.model.forecast(28)
    flat = trained.model.forecast(28, include_seasonality=False)
    assert not np.allclose(seasonal["predicted_amount"], flat["predicted_amount"])
    by_dow = lambda f: f.groupby(f["date"].dt.day_of_week)["predicted_amount"].mean().std()  # noqa: E731
    assert by_dow(flat) < 0.25 * by_dow(seasonal)
    assert (flat["lower"] <= flat["predicted_amount"]).all() and (flat["predicted_amount"] <= flat["upper"]).all()


def test_summary(trained):
    fc = trained.model.forecast(30)
    s = trained.model.summary(fc)
    assert s["total_predicted"] == pytest.approx(fc["predicted_amount"].sum(), abs=0.01)
    assert s["trend"] in {"increasing", "decreasing", "stable"}
    assert s["volatility"] > 0
    assert s["as_of"] == END.isoformat()
    rising = fc.assign(predicted_amount=np.linspace(0, 10 * s["volatility"], 30))
    assert trained.model.summary(rising)["trend"] == "increasing"
    assert trained.model.summary(fc.assign(predicted_amount=100.0))["trend"] == "stable"


def test_predict_is_the_serving_entry_point(trained):
    out = trained.model.predict(pd.DataFrame({"horizon_days": [7, 3], "include_seasonality": [True, False]}))
    assert list(out.columns) == ["request", "date", "predicted_amount", "lower", "upper"]
    assert out["request"].tolist() == [0] * 7 + [1] * 3
    pd.testing.assert_frame_equal(out[out["request"] == 0].drop(columns="request").reset_index(drop=True),
                                  trained.model.forecast(7))
    assert len(trained.model.predict(pd.DataFrame({"x": [1]}))) == 30  # horizon defaults to 30


def test_score_reproduces_the_training_metrics(trained):
    scored = cf.score(trained.model, trained.holdout)
    for name in cf.METRIC_NAMES:
        assert scored[name] == pytest.approx(trained.metrics[name], rel=1e-6, abs=1e-9), name


def test_pickle_roundtrip_forecasts_identically(trained):
    clone = pickle.loads(pickle.dumps(trained.model))
    for kwargs in ({"horizon_days": 30}, {"horizon_days": 365, "level": 0.8},
                   {"horizon_days": 14, "include_seasonality": False}):
        pd.testing.assert_frame_equal(clone.forecast(**kwargs), trained.model.forecast(**kwargs))


def test_small_sparse_series_trains_with_honest_wide_intervals(small, trained):
    m = small.metrics
    assert all(math.isfinite(m[k]) for k in cf.METRIC_NAMES), m
    assert 0.0 <= m["interval_coverage"] <= 1.0
    assert small.data_window["days"] == 120
    assert 1 <= small.data_window["n_origins"] < trained.data_window["n_origins"]
    assert small.data_window["origin_step"] == 7
    assert any("origin" in n for n in small.notes)
    assert relative_width(small) > relative_width(trained)
    fc = small.model.forecast(30)
    assert (fc["lower"] <= fc["predicted_amount"]).all() and (fc["predicted_amount"] <= fc["upper"]).all()


def test_too_short_series_is_rejected():
    with pytest.raises(TrainingDataError, match="at least 45 days"):
        cf.train(synthetic(44), candidates=("seasonal_naive_7",))
    result = cf.train(synthetic(45), candidates=("seasonal_naive_7", "mean_28", "gbm"))
    assert result.data_window["n_origins"] == 1
    assert any("gbm skipped" in n for n in result.notes)  # not enough history for its lags


def test_failing_candidate_is_skipped_with_a_note(monkeypatch):
    def boom(y, first, steps, config):
        raise RuntimeError("solver exploded")

    monkeypatch.setitem(cf._METHODS, "gbm", boom)
    result = cf.train(synthetic(120), candidates=("seasonal_naive_7", "mean_28", "gbm"))
    assert result.model.method in {"seasonal_naive_7", "mean_28"}
    assert any("gbm skipped" in n and "solver exploded" in n for n in result.notes)
    assert "cand_gbm_mase" not in result.metrics


def test_arima_candidate_runs():
    result = cf.train(synthetic(120, seed=5), candidates=("seasonal_naive_7", "arima"), make_figures=False)
    assert "cand_arima_mase" in result.metrics and math.isfinite(result.metrics["cand_arima_mase"])


def test_input_validation():
    frame = synthetic(60)
    series, notes = cf.daily_series(frame.drop(index=[10, 11]).iloc[::-1])  # unsorted, two days missing
    assert len(series) == 60 and series["metric_date"].is_monotonic_increasing
    assert series["net_flow"].iloc[10:12].tolist() == [0.0, 0.0]
    assert any("2 missing days" in n for n in notes)
    renamed, _ = cf.daily_series(frame.rename(columns={"net_flow": "net"}))  # fct_daily_metrics.net
    assert len(renamed) == 60
    with pytest.raises(TrainingDataError, match="duplicated"):
        cf.daily_series(pd.concat([frame, frame.tail(1)]))
    with pytest.raises(TrainingDataError, match="metric_date and net_flow"):
        cf.daily_series(frame.rename(columns={"net_flow": "amount"}))


def ledger_series(landing: Path) -> pd.DataFrame:
    rows = pd.concat([read_export(p) for p in sorted(landing.glob("*.csv"))])
    daily = rows.groupby("Date")["Amount"].sum()
    daily = daily.reindex(pd.date_range(daily.index.min(), daily.index.max(), freq="D"), fill_value=0.0)
    return pd.DataFrame({"metric_date": daily.index, "net_flow": daily.to_numpy()})


def test_generated_two_year_ledger_beats_seasonal_naive(tmp_path):
    generate(tmp_path / "raw", rows=20000, seed=7, end_date=END)
    series = ledger_series(tmp_path / "raw")
    assert len(series) >= 700
    result = cf.train(series, candidates=FAST, make_figures=False)
    m, base = result.metrics, result.baselines["seasonal_naive_7"]
    assert m["mase"] < base["mase"], (result.model.method, m, base)
    assert m["mae"] < base["mae"] and m["total_error_30d"] < base["total_error_30d"]
    assert 0.75 <= m["interval_coverage"] <= 1.0
    assert result.data_window["n_origins"] == 6
