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
    return {
        c: (frame[c].to_numpy(dtype=float) if c == "amount" else np.array(frame[c].tolist(), dtype=object))
        for c in frame.columns
    }


REQUESTS = {
    "category": pd.DataFrame(
        {
            "amount": [-54.99, -4.5, np.nan],
            "description": ["ADOBE *CREATIVE CLD", "", "SHELL 123"],
            "payment_method": ["credit_card", None, "debit"],
            "txn_date": ["2026-03-01", "2026-03-02", None],
            "reference": [None, None, "Shell"],
        }
    ),
    "amount": pd.DataFrame(
        {
            "category": ["software", "no such category", None],
            "txn_date": ["2026-03-01"] * 3,
            "payment_method": ["credit_card", None, None],
            "description": ["Adobe", "", None],
        }
    ),
    "anomaly": pd.DataFrame(
        {
            "amount": [-54.99, -9000.0, 2500.0],
            "category": ["software", None, None],
            "description": ["Adobe", "", "CLIENT PAYMENT"],
            "txn_date": ["2026-03-01"] * 3,
            "payment_method": ["credit_card", None, None],
            "reference": ["Adobe", None, None],
        }
    ),
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
            for p, c, alts in zip(
                frame_out["prediction"], frame_out["confidence"], frame_out["alternatives"]
            ):
                assert 0 <= c <= 1 and alts[0] == {"category": p, "confidence": c}
                assert [a["confidence"] for a in alts] == sorted(
                    (a["confidence"] for a in alts), reverse=True
                )
                assert sum(a["confidence"] for a in alts) <= 1 + 1e-9
        elif key == "amount":
            assert (frame_out["lower"] <= frame_out["predicted_amount"]).all()
            assert (frame_out["predicted_amount"] <= frame_out["upper"]).all()
            assert [f["unknown_category"] for f in frame_out["factors"]][1:] == [name != "global_median"] * 2
            assert all(f["baseline"] == name for f in frame_out["factors"])
        else:
            assert frame_out["anomaly_score"].between(0, 1).all()
            assert all(r for r, flag in zip(frame_out["reasons"], frame_out["is_anomaly"]) if flag)
            # the larger spend is the more anomalous one by either rule
            assert frame_out["anomaly_score"].iloc[1] > frame_out["anomaly_score"].iloc[0]


def test_the_amount_description_median_serves_the_description_then_category_then_global(ledger, trained):
    from titans_assets.lib.ml import amount, features
    from titans_assets.lib.ml.common import time_split

    result = trained["amount"]
    assert set(result.baselines) == {"global_median", "category_median", "description_median"}
    baseline = result.baseline_models["description_median"]
    train_rows, _ = time_split(amount.expense_rows(ledger[0]), "txn_date", test_fraction=0.2)
    train_rows = train_rows[train_rows["category"].notna()]
    a = train_rows["amount"].abs()
    key = features.clean_description(train_rows["description"])  # the model's own cleaning
    top = key.value_counts().index[0]
    raw = train_rows.loc[key == top, "description"].iloc[0]
    other = next(
        c
        for c in a.groupby(train_rows["category"]).median().index
        if c not in set(train_rows.loc[key == top, "category"])
    )
    out = baseline.predict(
        pd.DataFrame(
            {
                "category": [other, other, None],
                "txn_date": ["2026-07-01"] * 3,
                "description": [f"  {raw.upper()} #4321 ", "no such shop anywhere", "no such shop anywhere"],
            }
        )
    )
    desc, cat, glob = out["factors"].tolist()
    assert out["predicted_amount"].iloc[0] == pytest.approx(a[key == top].median())
    assert desc["match"] == "description" and desc["n_history"] == int((key == top).sum())
    cat_median = result.baseline_models["category_median"].predict(pd.DataFrame({"category": [other]}))
    assert out["predicted_amount"].iloc[1] == pytest.approx(cat_median["predicted_amount"].iloc[0])
    assert cat["match"] == "category" and glob["match"] == "global"
    assert out["predicted_amount"].iloc[2] == pytest.approx(a.median())
    assert (out["lower"] <= out["predicted_amount"]).all() and (out["predicted_amount"] <= out["upper"]).all()
    assert (out["upper"] > out["lower"]).all()  # never a zero-width interval from a few identical amounts


def test_the_gate_serves_the_description_median_when_it_wins(tmp_path):
    """Fixed prices per description, spread over categories: the description median is exact, so no
    model can beat it strictly, and it is what the gate serves."""
    from titans_assets.lib.ml import amount
    from titans_assets.lib.ml.promotion import decide

    rng = np.random.default_rng(3)
    n = 900
    shops = [f"shop {chr(97 + i)}{chr(97 + j)} market" for i in range(6) for j in range(5)]
    price = dict(zip(shops, np.round(rng.lognormal(3.5, 1.2, len(shops)), 2)))
    pick = rng.choice(shops, size=n)
    frame = pd.DataFrame(
        {
            "txn_date": pd.date_range("2025-01-01", periods=n, freq="9h").strftime("%Y-%m-%d"),
            "txn_type": "Expense",
            "description": pick,
            "amount": [-price[s] for s in pick],
            "category": rng.choice(["groceries", "office_supplies", "software"], size=n),
            "payment_method": "debit_card",
            "reference": "",
        }
    )
    result = amount.train(frame)
    assert result.baselines["description_median"]["mae"] == pytest.approx(0.0, abs=1e-9)
    d = decide(amount.PRIMARY_METRIC, amount.HIGHER_IS_BETTER, result.metrics, result.baselines)
    assert d.served == "baseline:description_median", d.reason


def test_cashflow_baselines_forecast_like_the_model(trained):
    for name, baseline in trained["cashflow"].baseline_models.items():
        fc = baseline.forecast(30)
        assert len(fc) == 30 and (fc["lower"] <= fc["predicted_amount"]).all()
        assert (fc["predicted_amount"] <= fc["upper"]).all()
        assert baseline.summary(fc)["method"] == name
