"""Every model's baselines are fitted objects that serve like the model (what the registry serves when no
trained model beats them): the serving output columns, the request-columns path equal to the DataFrame
path, a pickle round trip, and `score(baseline, holdout)` equal to the baseline metrics of the training."""

from __future__ import annotations

import datetime as dt
import pickle

import numpy as np
import pandas as pd
import pytest

from titans_assets.lib.generator import generate
from titans_assets.lib.ml import catalog, data

END = dt.date(2026, 6, 30)


@pytest.fixture(scope="module")
def ledger(tmp_path_factory):
    root = tmp_path_factory.mktemp("baselines")
    generate(root / "raw", rows=2500, seed=8, end_date=END, labels_dir=root / "labels")
    frame = data.frame_from_csvs(root / "raw")
    return frame, data.anomaly_labels(frame, root / "labels")


@pytest.fixture(scope="module")
def trained(ledger):
    frame, labels = ledger
    out = {}
    for key in ("category", "amount", "anomaly", "cashflow"):
        module = catalog.BY_KEY[key].module
        if key == "anomaly":
            out[key] = module.train(frame, labels=labels)
        elif key == "cashflow":
            out[key] = module.train(data.daily_series(frame), make_figures=False)
        else:
            out[key] = module.train(frame)
    return out


def _columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """A request's columns as serving builds them (amount float, the rest object arrays)."""
    return {c: (frame[c].to_numpy(dtype=float) if c == "amount" else np.array(frame[c].tolist(), dtype=object))
            for c in frame.columns}


REQUESTS = {
    "category": pd.DataFrame({"amount": [-54.99, -4.5, np.nan], "description": ["ADOBE *CREATIVE CLD", "", "SHELL 123"],
                              "payment_method": ["credit_card", None, "debit"],
                              "txn_date": ["2026-03-01", "2026-03-02", None], "reference": [None, None, "Shell"]}),
    "amount": pd.DataFrame({"category": ["software", "no such category", None], "txn_date": ["2026-03-01"] * 3,
                            "payment_method": ["credit_card", None, None], "description": ["Adobe", "", None]}),
    "anomaly": pd.DataFrame({"amount": [-54.99, -9000.0, 2500.0], "category": ["software", None, None],
                             "description": ["Adobe", "", "CLIENT PAYMENT"], "txn_date": ["2026-03-01"] * 3,
                             "payment_method": ["credit_card", None, None], "reference": ["Adobe", None, None]}),
}


@pytest.mark.parametrize("key", ["category", "amount", "anomaly", "cashflow"])
def test_every_baseline_scores_what_the_training_reported(trained, key):
    spec = catalog.BY_KEY[key]
    result = trained[key]
    assert set(result.baseline_models) == set(result.baselines)
    for name, baseline in result.baseline_models.items():
        again = spec.module.score(baseline, result.holdout)[spec.primary_metric]
        assert again == pytest.approx(result.baselines[name][spec.primary_metric], rel=1e-12, abs=1e-12), name


@pytest.mark.parametrize("key", ["category", "amount", "anomaly"])
def test_every_baseline_answers_requests_like_the_model(trained, key):
    spec = catalog.BY_KEY[key]
    model_out = trained[key].model.predict_columns(REQUESTS[key])
    for name, baseline in trained[key].baseline_models.items():
        frame_out = baseline.predict(REQUESTS[key])
        cols_out = baseline.predict_columns(_columns(REQUESTS[key]))
        assert set(cols_out) == set(model_out), name
        pd.testing.assert_frame_equal(pd.DataFrame(cols_out, index=frame_out.index), frame_out)
        assert pickle.loads(pickle.dumps(baseline)).predict(REQUESTS[key]).equals(frame_out)
        assert len(baseline.predict(spec.example_frame())) == 1
        if key == "category":
            for p, c, alts in zip(frame_out["prediction"], frame_out["confidence"], frame_out["alternatives"]):
                assert 0 <= c <= 1 and alts[0] == {"category": p, "confidence": c}
                assert [a["confidence"] for a in alts] == sorted((a["confidence"] for a in alts), reverse=True)
                assert sum(a["confidence"] for a in alts) <= 1 + 1e-9
        elif key == "amount":
            assert (frame_out["lower"] <= frame_out["predicted_amount"]).all()
            assert (frame_out["predicted_amount"] <= frame_out["upper"]).all()
            assert [f["unknown_category"] for f in frame_out["factors"]][1:] == [name == "category_median"] * 2
        else:
            assert frame_out["anomaly_score"].between(0, 1).all()
            assert all(r for r, flag in zip(frame_out["reasons"], frame_out["is_anomaly"]) if flag)
            # the larger spend is the more anomalous one by either rule
            assert frame_out["anomaly_score"].iloc[1] > frame_out["anomaly_score"].iloc[0]


def test_cashflow_baselines_forecast_like_the_model(trained):
    for name, baseline in trained["cashflow"].baseline_models.items():
        fc = baseline.forecast(30)
        assert len(fc) == 30 and (fc["lower"] <= fc["predicted_amount"]).all()
        assert (fc["predicted_amount"] <= fc["upper"]).all()
        assert baseline.summary(fc)["method"] == name
