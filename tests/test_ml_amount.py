"""The expense amount model on generated ledgers (no database): beats its baselines, honest intervals,
serving-shaped predictions for single requests, unknown categories, small data, pickling."""

from __future__ import annotations

import datetime as dt
import io
import pickle
import time

import numpy as np
import pandas as pd
import pytest
from conftest import warehouse_rows
from matplotlib.figure import Figure
from support import row_chunks

from titans_assets.lib.generator import generate
from titans_assets.lib.ml import amount, features
from titans_assets.lib.ml.amount import conformal
from titans_assets.lib.ml.amount.request import _hashed_rows
from titans_assets.lib.ml.amount.rows import _enrich
from titans_assets.lib.ml.common import TrainingDataError, TrainResult

END = dt.date(2026, 6, 30)
SEED = 11


@pytest.fixture(scope="module")
def ledger(tmp_path_factory) -> pd.DataFrame:
    root = tmp_path_factory.mktemp("amount")
    generate(root / "raw", rows=20_000, seed=SEED, end_date=END, labels_dir=root / "labels")
    return warehouse_rows(root / "raw")


@pytest.fixture(scope="module")
def result(ledger) -> TrainResult:
    return amount.train(ledger)


@pytest.fixture(scope="module")
def small_result(tmp_path_factory) -> TrainResult:
    """About a hundred expense rows over four months."""
    root = tmp_path_factory.mktemp("amount_small")
    generate(root / "raw", rows=115, years=4 / 12, seed=SEED, end_date=END, labels_dir=root / "labels")
    data = warehouse_rows(root / "raw")
    assert 90 <= int((data["txn_type"] == "Expense").sum()) <= 115
    return amount.train(data)


def test_contract_constants():
    assert amount.NAME == "titans_amount"
    assert amount.PRIMARY_METRIC == "mae" and amount.HIGHER_IS_BETTER is False


def test_beats_every_median_baseline_on_mae(result):
    m = result.metrics
    assert set(result.baselines) == {"global_median", "category_median", "description_median"}
    name, best = result.best_baseline(amount.PRIMARY_METRIC, amount.HIGHER_IS_BETTER)
    assert m["mae"] < best, (m["mae"], name, best)
    for base in result.baselines.values():
        assert m["mae"] < base["mae"]
        assert m["r2"] > base["r2"]
        assert {"mae", "median_ae", "rmse", "r2", "interval_coverage"} <= set(base)
    for key in (
        "mae",
        "median_ae",
        "rmse",
        "r2",
        "smape",
        "median_ape",
        "interval_coverage",
        "mean_interval_width",
        "n_train",
        "n_test",
    ):
        assert np.isfinite(m[key]), key
    assert m["n_test"] > 2000 and m["n_train"] > 8000


def test_interval_coverage_is_close_to_nominal(result):
    m = result.metrics
    assert 0.85 <= m["interval_coverage"] <= 0.95
    # The same test rows asked as partial requests keep honest intervals too.
    assert 0.85 <= m["description_only_interval_coverage"] <= 0.95
    assert 0.85 <= m["bare_interval_coverage"] <= 0.95
    assert m["mae"] <= m["bare_mae"]


def test_predictions_are_ordered_aligned_and_positive(result):
    holdout = result.holdout
    out = result.model.predict(holdout)
    assert out.index.equals(holdout.index)
    assert list(out.columns) == ["predicted_amount", "lower", "upper", "level", "factors"]
    assert (out["lower"] <= out["predicted_amount"]).all()
    assert (out["predicted_amount"] <= out["upper"]).all()
    assert (out["predicted_amount"] > 0).all() and (out["lower"] >= 0).all()
    assert (out["level"] == 0.9).all()


def test_single_row_with_category_and_date_only(result):
    out = result.model.predict(pd.DataFrame([{"category": "food", "date": "2026-07-03"}]))
    assert len(out) == 1
    row = out.iloc[0]
    assert 0 <= row["lower"] <= row["predicted_amount"] <= row["upper"]
    f = row["factors"]
    for key in ("category_average", "category_median", "seasonal_adjustment", "n_history"):
        assert key in f
    assert f["unknown_category"] is False and f["n_history"] > 100 and f["seasonal_adjustment"] > 0
    assert "merchant_median" not in f
    # Plain Python numbers: the service serialises factors as JSON.
    assert all(isinstance(v, (bool, int, float, str)) for v in f.values())


def test_known_merchant_sharpens_the_prediction(result):
    holdout = result.holdout
    meals = holdout[(holdout["category"] == "meals_entertainment") & holdout["reference"].ne("")]
    reference = meals["reference"].value_counts().index[0]
    description = meals.loc[meals["reference"] == reference, "description"].value_counts().index[0]
    req = pd.DataFrame(
        [
            {"category": "meals_entertainment", "txn_date": "2026-07-06", "reference": reference},
            {"category": "meals_entertainment", "txn_date": "2026-07-06", "description": description},
            {"category": "Meals & Entertainment", "txn_date": "2026-07-06"},
        ]
    )
    out = result.model.predict(req)
    with_ref, with_desc, bare = out["factors"].tolist()
    assert with_ref["merchant_match"] == "reference+category" and with_ref["merchant_median"] > 0
    assert with_desc["merchant_match"].startswith("description") and with_desc["merchant_n"] >= 1
    assert bare["unknown_category"] is False  # the label was normalised like the warehouse does
    width = (out["upper"] - out["lower"]) / out["predicted_amount"]
    assert width.iloc[0] < width.iloc[2]


def test_unknown_category_gets_a_wide_global_interval(result):
    req = pd.DataFrame(
        [
            {"category": "spaceships", "date": "2026-07-03"},
            {"category": None, "date": "2026-07-03"},
            {"category": "food", "date": "2026-07-03"},
        ]
    )
    out = result.model.predict(req)
    unknown, missing, known = out["factors"].tolist()
    assert unknown["unknown_category"] is True and missing["unknown_category"] is True
    assert known["unknown_category"] is False
    assert unknown["n_history"] == 0 and "basis" in unknown
    rel = (out["upper"] - out["lower"]) / out["predicted_amount"]
    assert rel.iloc[0] > rel.iloc[2]
    assert (out["lower"] <= out["predicted_amount"]).all() and (out["predicted_amount"] <= out["upper"]).all()


def test_level_can_be_chosen_at_prediction(result):
    rows = result.holdout.head(200)
    wide = result.model.predict(rows)
    narrow = result.model.predict(rows, level=0.5)
    assert (narrow["level"] == 0.5).all()
    assert ((narrow["upper"] - narrow["lower"]) <= (wide["upper"] - wide["lower"]) + 0.01).all()
    assert (narrow["upper"] - narrow["lower"]).mean() < (wide["upper"] - wide["lower"]).mean()


def test_batch_of_a_thousand_rows_is_fast(result):
    rows = result.holdout.head(1000)
    result.model.predict(rows.head(5))
    t0 = time.perf_counter()
    out = result.model.predict(rows)
    assert len(out) == len(rows)
    assert time.perf_counter() - t0 < 5.0


def test_pickle_round_trip_predicts_identically(result):
    clone = pickle.loads(pickle.dumps(result.model))
    rows = pd.concat(
        [
            result.holdout.head(300),
            pd.DataFrame(
                [
                    {"category": "food", "txn_date": "2026-07-03"},
                    {"category": "spaceships", "txn_date": "2026-07-03"},
                ]
            ),
        ],
        ignore_index=True,
    )
    pd.testing.assert_frame_equal(clone.predict(rows), result.model.predict(rows))


def test_score_rescores_the_same_holdout(result):
    again = amount.score(result.model, result.holdout)
    assert set(again) == set(result.metrics)
    for key, value in result.metrics.items():
        assert again[key] == pytest.approx(value, rel=1e-9), key


def test_score_works_for_any_object_with_predict(result):
    class Wrapped:  # e.g. a champion behind another interface: only predict(frame)
        def __init__(self, model):
            self.model = model

        def predict(self, frame):
            return self.model.predict(frame)

    holdout = result.holdout.head(400)
    direct = amount.score(result.model, holdout)
    wrapped = amount.score(Wrapped(result.model), holdout)
    for key in ("mae", "rmse", "interval_coverage", "description_only_mae", "bare_interval_coverage"):
        assert wrapped[key] == pytest.approx(direct[key], rel=1e-9), key


def test_empty_and_partial_frames(result):
    empty = result.model.predict(pd.DataFrame({"category": [], "date": []}))
    assert empty.empty and list(empty.columns) == ["predicted_amount", "lower", "upper", "level", "factors"]
    out = result.model.predict(pd.DataFrame({"date": ["2026-07-01", "2026-07-02"]}, index=[7, 3]))
    assert list(out.index) == [7, 3] and all(f["unknown_category"] for f in out["factors"])


def test_figures_and_logged_choices(result):
    assert set(result.figures) == {"residuals.png", "intervals.png"}
    for fig in result.figures.values():
        assert isinstance(fig, Figure)
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        assert buf.getvalue()[:4] == b"\x89PNG"
    assert "coverage" in result.figures["intervals.png"].axes[0].get_title()
    assert result.params["level"] == 0.9 and result.params["max_train_rows"] > 0
    w = result.data_window
    assert w["train_end"] < w["test_start"] and w["fit_rows"] + w["calibration_rows"] == w["train_rows"]


def test_max_train_rows_caps_and_is_noted(ledger):
    res = amount.train(ledger, max_train_rows=3000, max_iter=60)
    assert res.metrics["n_train"] == 3000 and res.params["train_rows_before_cap"] > 3000
    assert any("max_train_rows" in n for n in res.notes)
    assert res.data_window["train_rows"] == 3000


def test_small_ledger_trains_with_wider_intervals(small_result, result):
    m = small_result.metrics
    assert any("small data" in n for n in small_result.notes)
    assert m["n_test"] >= 20
    assert m["median_relative_width"] > result.metrics["median_relative_width"]
    out = small_result.model.predict(pd.DataFrame([{"category": "food", "date": "2026-07-03"}]))
    assert 0 <= out["lower"].iat[0] <= out["predicted_amount"].iat[0] <= out["upper"].iat[0]


def test_rare_categories_shrink_toward_the_global_median(ledger):
    rows = ledger.copy()
    expense = rows.index[rows["txn_type"] == "Expense"]
    rare = expense[::400]  # a handful of rows spread over the period
    rows.loc[rare, "category"] = "rare_thing"
    rows.loc[rare, "amount"] = -5000.0
    res = amount.train(rows, max_train_rows=6000, max_iter=60)
    state = res.model.state
    row = state.category.loc["rare_thing"]
    assert row["med"] > row["shrunk"] > state.global_median  # pulled toward the global median


def test_too_little_data_is_a_training_data_error(ledger):
    with pytest.raises(TrainingDataError):
        amount.train(ledger.head(30))
    with pytest.raises(TrainingDataError):
        amount.train(ledger[ledger["txn_type"] == "Income"])


def test_unknown_parameter_is_rejected(ledger):
    with pytest.raises(ValueError, match="unknown parameters"):
        amount.train(ledger, levle=0.8)


# --------------------------------------------------------------------------- the request (small-frame) path
def _requests(ledger: pd.DataFrame, n: int = 1200) -> pd.DataFrame:
    """Expense rows as the service sends them: ISO date strings, some without a reference, a description
    or a payment method, a few unknown or missing categories and messy text."""
    rows = amount.expense_rows(ledger).sample(n, random_state=4)
    frame = pd.DataFrame(
        {
            "date": pd.to_datetime(rows["txn_date"]).dt.strftime("%Y-%m-%d").to_numpy(),
            "category": rows["category"].to_numpy(dtype=object),
            "description": rows["description"].to_numpy(dtype=object),
            "payment_method": rows["payment_method"].to_numpy(dtype=object),
            "reference": rows["reference"].to_numpy(dtype=object),
        },
        index=rows.index,
    )
    frame.iloc[::3, frame.columns.get_loc("reference")] = None
    frame.iloc[::4, frame.columns.get_loc("description")] = None
    frame.iloc[::5, frame.columns.get_loc("payment_method")] = None
    frame.iloc[::19, frame.columns.get_loc("category")] = "Brand New Category"
    frame.iloc[::31, frame.columns.get_loc("category")] = None
    frame.iloc[::13, frame.columns.get_loc("description")] = "  Café ☕ #12  naïve*CA "
    frame.iloc[::29, frame.columns.get_loc("date")] = "2024-02-29"
    return frame


def _parts(frame: pd.DataFrame, sizes=(1, 1, 3, 16, 64)):
    return row_chunks(frame, sizes)


def test_requests_predict_exactly_as_the_batch_path(result, ledger, monkeypatch):
    """A request (up to features.SMALL rows) takes the small path: its own hashed words, dict lookups of
    the fitted tables, the boosted trees walked in numpy; every number and factor is the batch path's."""
    from titans_assets.lib.ml import features as F

    model = result.model
    requests = _requests(ledger)
    parts = list(_parts(requests))
    fast = pd.concat([model.predict(p) for p in parts])
    fast_80 = pd.concat([model.predict(p, level=0.8) for p in parts[:30]])
    monkeypatch.setattr(F, "SMALL", -1)  # from here on every frame takes the batch path
    pd.testing.assert_frame_equal(fast, model.predict(requests), check_exact=True)
    pd.testing.assert_frame_equal(
        fast_80, pd.concat([model.predict(p, level=0.8) for p in parts[:30]]), check_exact=True
    )
    assert fast["factors"].tolist() == model.predict(requests)["factors"].tolist()


def test_the_numpy_tree_walk_equals_the_booster(result, ledger):
    model = result.model
    rows = _enrich(
        features.prepare(amount.expense_rows(ledger).sample(2000, random_state=5), model.vocabulary)
    )
    enc = model._encoder()
    X = enc.matrix(model.state, rows, model.codes, enc.text_matrix(rows))[model.feature_names].to_numpy(
        dtype=float
    )
    rng = np.random.default_rng(0)
    odd = X.copy()
    odd[::7, 0] = 999.0  # a category code the booster never saw
    odd[::5, 1] = np.nan  # no payment method
    odd[::3, 2:] = np.where(rng.random(odd[::3, 2:].shape) < 0.2, np.nan, odd[::3, 2:])
    odd[::11, 0] = -1.0
    trees = model._trees()
    assert trees is not None
    for matrix in (X, odd):
        expected = model.booster.predict(matrix)
        got = np.concatenate([trees.predict(matrix[i : i + 17]) for i in range(0, len(matrix), 17)])
        np.testing.assert_array_equal(got, expected)


def test_hashed_rows_equal_the_hashing_vectorizer(result, ledger):
    vectorizer = result.model.vectorizer
    texts = list(dict.fromkeys(ledger["description"].astype(str).sample(3000, random_state=6).tolist()))
    texts += ["", "12 34", "Café ☕ naïve 日本 o'reilly at&t", "x" * 400, "AMZN MKTP US*2K4RT1"]
    expected = vectorizer.transform(texts)
    got = _hashed_rows(vectorizer, texts)
    np.testing.assert_array_equal(got.indptr, expected.indptr)
    np.testing.assert_array_equal(got.indices, expected.indices)
    np.testing.assert_array_equal(got.data, expected.data)


def test_the_service_path_equals_the_batch_path(result, ledger, monkeypatch):
    """A single request and a few rows reach the model as plain columns, a batch above SMALL as a
    DataFrame: the same response bodies as with every frame through the batch path."""
    from titans_assets.lib.ml import features as F
    from titans_assets.lib.serving import predict as serving

    model = result.model
    frame = _requests(ledger, 600).drop(columns=["reference"])  # the service's amount rows have none
    rows = [
        {
            "category": r["category"],
            "txn_date": r["date"],
            "payment_method": r["payment_method"],
            "description": r["description"],
        }
        for r in frame.to_dict("records")
    ]
    single = [serving.amount(model, [r])[0] for r in rows]
    small = serving.amount(model, rows[: F.SMALL])
    batch = serving.amount(model, rows)
    monkeypatch.setattr(F, "SMALL", -1)  # from here on: DataFrames and the batch path
    want = serving.amount(model, rows)
    assert single == want and small == want[: len(small)] and batch == want
    direct = model.predict(frame)
    assert [b["predicted_amount"] for b in want] == direct["predicted_amount"].tolist()
    assert [b["confidence_interval"]["lower"] for b in want] == direct["lower"].tolist()
    assert any(b["factors"].get("merchant_n") for b in want) and any(
        b["factors"]["unknown_category"] for b in want
    )


def test_an_unseen_description_matches_on_its_first_word(result):
    from titans_assets.lib.ml import features

    holdout = result.holdout[result.holdout["category"].notna() & result.holdout["description"].ne("")]
    row = holdout.iloc[0]
    word = features.clean_description_text(row["description"]).split(" ")[0]
    out = result.model.predict(
        pd.DataFrame(
            [
                {
                    "category": row["category"],
                    "txn_date": "2026-07-06",
                    "description": f"{word.upper()} qqzx unseen branch",
                }
            ]
        )
    )
    f = out["factors"].iloc[0]
    assert f["merchant_match"] == "first word+category" and f["merchant_n"] >= 1


def test_calibration_keys_fall_back_from_the_match_group_to_the_pooled_tier():
    assert conformal._calibration_keys("food", "description", "new") == (
        ("food", "description/new"),
        ("*", "description/new"),
        ("food", "description"),
        ("*", "description"),
    )
    assert conformal._calibration_keys("food", "bare", "new") == (("food", "bare"), ("*", "bare"))
    assert conformal._match_groups(np.array([0.0, 0.5, 1.0, 2.0, 4.0])).tolist() == [
        "new",
        "new",
        "seen",
        "seen",
        "seen",
    ]


def _log_offsets(model, category: str, tier: str, match: str) -> tuple[float, float]:
    key = next(k for k in conformal._calibration_keys(category, tier, match) if k in model.calibration)
    return conformal._conformal_bounds(model.calibration[key].astype(float), model.level)[:2]


def test_unseen_merchants_get_their_own_conformal_quantiles(result):
    """Mondrian by merchant match: a description never seen in the fitted history is calibrated on the
    calibration rows that were unseen too (they miss by more), a seen one on the seen rows."""
    model = result.model
    cal = model.calibration
    assert ("*", "description/new") in cal and ("*", "description/seen") in cal
    assert len(cal[("*", "description/new")]) + len(cal[("*", "description/seen")]) == len(
        cal[("*", "description")]
    )
    assert "description/new" in result.params["mondrian_match_groups"]
    seen_lo, seen_hi = _log_offsets(model, "food", "description", "seen")
    new_lo, new_hi = _log_offsets(model, "food", "description", "new")
    assert new_hi - new_lo > seen_hi - seen_lo  # unseen merchants are harder: wider in log space
    holdout = result.holdout[(result.holdout["category"] == "food") & result.holdout["description"].ne("")]
    described = holdout["description"].value_counts().index[0]
    req = pd.DataFrame(
        [
            {"category": "food", "txn_date": "2026-07-06", "description": described},
            {"category": "food", "txn_date": "2026-07-06", "description": "zzqx qqzx never seen"},
        ]
    )
    out = result.model.predict(req)
    seen_f, new_f = out["factors"].tolist()
    assert seen_f["merchant_match"].startswith("description") and "merchant_match" not in new_f
    log_width = np.log1p(out["upper"]) - np.log1p(out["lower"])
    assert log_width.iloc[1] == pytest.approx(new_hi - new_lo, abs=0.02)  # cents rounding only
    assert log_width.iloc[0] == pytest.approx(seen_hi - seen_lo, abs=0.02)


def test_a_small_match_group_falls_back_to_the_pooled_tier(ledger):
    """With fewer calibration rows in a match group than min_match_calibration, its requests use the
    tier's pooled quantiles (the model as it was before the split)."""
    pooled = amount.train(ledger.iloc[-6000:], min_match_calibration=10**9)
    assert not any("/" in t for _, t in pooled.model.calibration)
    assert pooled.params["mondrian_match_groups"] == ""
    req = pd.DataFrame(
        [{"category": "food", "txn_date": "2026-07-06", "description": "zzqx qqzx never seen"}]
    )
    out = pooled.model.predict(req)
    lo, hi = _log_offsets(pooled.model, "food", "description", "new")
    assert (lo, hi) == conformal._conformal_bounds(
        pooled.model.calibration[
            next(k for k in (("food", "description"), ("*", "description")) if k in pooled.model.calibration)
        ].astype(float),
        pooled.model.level,
    )[:2]
    assert np.log1p(out["upper"].iloc[0]) - np.log1p(out["lower"].iloc[0]) == pytest.approx(hi - lo, abs=0.02)
