"""The anomaly model on generated ledgers: beats its baselines, explains itself, serves one row or a
batch, picks its threshold on validation data, and trains on a small ledger.

Pure Python (no database): the generator's CSVs are read with pandas and mapped to the warehouse
columns; the ground truth (`anomalies.csv`) is joined by (file, line_number).
"""

from __future__ import annotations

import datetime as dt
import pickle
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from titans_assets.lib.generator import generate, read_export
from titans_assets.lib.ml import anomaly
from titans_assets.lib.ml.anomaly.canon import _canon
from titans_assets.lib.ml.anomaly.constants import _IF_COLUMNS
from titans_assets.lib.ml.anomaly.forest import _Forest
from titans_assets.lib.ml.common import TrainingDataError
from titans_assets.lib.ml.features import Vocabulary, prepare, row_features

END = dt.date(2025, 6, 30)
ROWS = 20_000
SEED = 11


def load_exports(raw_dir: Path, labels_dir: Path | None = None) -> tuple[pd.DataFrame, pd.Series]:
    """Warehouse-shaped rows (as fct_transactions has them) and their anomaly type (None = normal)."""
    frames = []
    for path in sorted(raw_dir.glob("*.csv")):
        x = read_export(path)
        expense = x["Type"] == "Expense"
        frames.append(
            pd.DataFrame(
                {
                    "txn_date": x["Date"].dt.date,
                    "account": path.stem,
                    "source_file": path.name,
                    "line_number": x["line_number"],
                    "txn_type": x["Type"],
                    "description": x["Description"],
                    "amount": x["Amount"],
                    "category": x["Category"].where(expense & (x["Category"] != ""), None),
                    "payment_method": x["Payment Method"],
                    "reference": x["Reference"],
                }
            )
        )
    df = pd.concat(frames, ignore_index=True)
    df["merchant"] = prepare(df, Vocabulary.from_seeds())["merchant"]
    kinds = pd.Series(None, index=df.index, dtype=object)
    if labels_dir is not None:
        truth = pd.read_csv(labels_dir / "anomalies.csv")
        keyed = (
            df[["source_file", "line_number"]]
            .reset_index()
            .merge(
                truth.rename(columns={"file": "source_file"}), on=["source_file", "line_number"], how="inner"
            )
        )
        kinds[keyed["index"].to_numpy()] = keyed["anomaly_type"].to_numpy()
    return df, kinds


@pytest.fixture(scope="module")
def ledger(tmp_path_factory) -> tuple[pd.DataFrame, pd.Series]:
    root = tmp_path_factory.mktemp("anomaly_ledger")
    generate(root / "raw", rows=ROWS, seed=SEED, end_date=END, labels_dir=root / "labels")
    return load_exports(root / "raw", root / "labels")


@pytest.fixture(scope="module")
def trained(ledger):
    df, kinds = ledger
    return anomaly.train(df, kinds.notna())


@pytest.fixture(scope="module")
def injected(ledger):
    df, _ = ledger
    return anomaly.train(df, None, seed=3)


def merchant_rows(df: pd.DataFrame, model: anomaly.AnomalyModel, min_rows: int = 40) -> pd.DataFrame:
    """Expense rows of a frequent, single-category merchant with a steady business-day history."""
    e = df[(df["txn_type"] == "Expense") & df["merchant"].notna()]
    counts = e.groupby("merchant")["category"].agg(["size", "nunique"])
    name = counts[(counts["size"] >= min_rows) & (counts["nunique"] == 1)].sort_values("size").index[-1]
    return e[e["merchant"] == name]


# --------------------------------------------------------------------------- quality
def test_beats_baselines_on_ground_truth(trained):
    m = trained.metrics
    best_name, best_ap = trained.best_baseline(anomaly.PRIMARY_METRIC, anomaly.HIGHER_IS_BETTER)
    assert set(trained.baselines) == {"abs_amount", "category_zscore"}
    assert m["n_anomalies_test"] >= 20
    assert m["average_precision"] > best_ap + 0.3, (m, trained.baselines)
    assert m["roc_auc"] > 0.95
    assert m["precision_at_k"] > 0.6
    assert m["f1"] > 0.6
    assert trained.params["evaluation"] == "ground_truth"


def test_metrics_and_result_shape(trained):
    keys = {
        "roc_auc",
        "average_precision",
        "precision_at_k",
        "precision",
        "recall",
        "f1",
        "threshold",
        "n_test",
        "n_anomalies_test",
    }
    assert keys <= set(trained.metrics)
    assert all(np.isfinite(trained.metrics[k]) for k in keys)
    assert anomaly.NAME == "titans_anomaly" and anomaly.PRIMARY_METRIC == "average_precision"
    assert anomaly.HIGHER_IS_BETTER is True
    frame, labels = trained.holdout
    assert len(frame) == len(labels) == trained.metrics["n_test"]
    assert labels.sum() == trained.metrics["n_anomalies_test"]
    w = trained.data_window
    assert w["train_end"] < w["test_start"] and w["validation_start"] <= w["train_end"]
    fig = trained.figures["anomaly_score_distribution.png"]
    assert isinstance(fig, Figure) and fig.axes[0].lines  # the threshold line


def test_score_rescores_the_same_holdout(trained):
    again = anomaly.score(trained.model, trained.holdout)
    for k, v in trained.metrics.items():
        assert again[k] == pytest.approx(v), k


def test_scores_in_unit_interval_and_levels_follow_threshold(trained):
    frame, _ = trained.holdout
    pred = trained.model.predict(frame)
    assert list(pred.columns) == ["anomaly_score", "is_anomaly", "risk_level", "reasons"]
    assert pred.index.equals(frame.index)
    s = pred["anomaly_score"]
    assert s.between(0, 1).all() and s.notna().all()
    t = trained.model.threshold
    assert (pred["is_anomaly"] == (s >= t)).all()
    assert (pred.loc[pred["is_anomaly"], "risk_level"] == "high").all()
    assert set(pred.loc[~pred["is_anomaly"], "risk_level"]) <= {"low", "medium"}
    assert pred["reasons"].map(lambda r: isinstance(r, list)).all()
    assert pred.loc[pred["is_anomaly"], "reasons"].map(len).gt(0).all()  # every flag is explained
    assert pred["reasons"].map(len).eq(0).mean() > 0.8  # most rows: nothing stands out


# --------------------------------------------------------------------------- reasons
def test_reasons_name_the_generated_spikes_and_duplicates(trained, ledger):
    _, kinds = ledger
    frame, _ = trained.holdout
    pred = trained.model.predict(frame)
    kind = kinds.reindex(frame.index)
    spikes = pred[kind == "amount_spike"]
    dups = pred[(kind == "duplicate_charge") & pred["is_anomaly"]]
    assert len(spikes) and len(dups)
    spike_reason = spikes["reasons"].map(lambda r: any(x.startswith("amount ") and "x " in x for x in r))
    assert spike_reason.mean() >= 0.8, spikes
    assert dups["reasons"].map(lambda r: any("same amount charged" in x for x in r)).all(), dups


def test_reasons_for_a_built_spike_and_duplicate(trained, ledger):
    df, kinds = ledger
    model = trained.model
    rows = merchant_rows(df[kinds.isna()], model)
    base = rows.iloc[[-1]].copy()
    median = float(np.exp(np.median(np.log(rows["amount"].abs()))))
    spike = base.assign(amount=-round(median * 12, 2), txn_date=dt.date(2025, 7, 2))
    twin = base.assign(amount=-round(median * 1.05, 2), txn_date=dt.date(2025, 7, 3))
    batch = pd.concat([spike, twin, twin], ignore_index=True)
    pred = model.predict(batch)
    assert pred.loc[0, "is_anomaly"]
    assert any(r.startswith("amount ") and "x this merchant's median (" in r for r in pred.loc[0, "reasons"])
    assert "12." in pred.loc[0, "reasons"][0] or "11." in pred.loc[0, "reasons"][0]
    for i in (1, 2):
        assert pred.loc[i, "anomaly_score"] > pred.loc[0, "anomaly_score"] / 2
        assert any(
            r.startswith("same amount charged twice by this merchant today") for r in pred.loc[i, "reasons"]
        )
    alone = model.predict(twin)  # one row alone: no duplicate, nothing stands out
    assert not alone.loc[alone.index[0], "is_anomaly"] and alone["reasons"].iloc[0] == []


def test_reasons_for_new_merchant_and_atypical_category(trained, ledger):
    df, kinds = ledger
    rows = merchant_rows(df[kinds.isna()], trained.model)
    other = sorted(set(df["category"].dropna()) - set(rows["category"]))
    weekday = dt.date(2025, 7, 2)
    batch = pd.DataFrame(
        {
            "txn_date": [weekday, weekday],
            "amount": [-4500.0, float(rows["amount"].iloc[0])],
            "category": ["professional_fees", other[0]],
            "txn_type": "Expense",
            "description": ["WIRE TRANSFER TO BRAND NEW CONSULTING 123", rows["description"].iloc[0]],
            "reference": ["Brand New Consulting 123", rows["reference"].iloc[0]],
        }
    )
    pred = trained.model.predict(batch)
    assert "first transaction with this merchant, 4,500.00" in pred.loc[0, "reasons"]
    assert pred.loc[0, "is_anomaly"]
    merchant = rows["merchant"].iloc[0]
    assert f"merchant '{merchant}' never seen under {other[0]}" in pred.loc[1, "reasons"]


# --------------------------------------------------------------------------- serving
def test_single_row_with_only_amount_and_date(trained):
    model = trained.model
    for request in (
        pd.DataFrame({"amount": [-45.0], "date": ["2025-07-01"]}),
        pd.DataFrame(
            {
                "amount": [-9800.0],
                "date": ["2025-07-05"],
                "category": ["Software"],
                "description": ["ADOBE *CREATIVE CLD"],
                "payment_method": ["credit_car"],
                "reference": [None],
            }
        ),
    ):
        pred = model.predict(request)
        assert len(pred) == 1 and pred.index.equals(request.index)
        assert 0.0 <= pred["anomaly_score"].iloc[0] <= 1.0
        assert pred["risk_level"].iloc[0] in {"low", "medium", "high"}
        assert isinstance(pred["reasons"].iloc[0], list)
    big = model.predict(pd.DataFrame({"amount": [-250_000.0], "date": ["2025-07-01"]}))
    assert (
        big["anomaly_score"].iloc[0]
        > model.predict(pd.DataFrame({"amount": [-45.0], "date": ["2025-07-01"]}))["anomaly_score"].iloc[0]
    )
    assert big["reasons"].iloc[0] and big["reasons"].iloc[0][0].startswith("amount ")
    assert model.predict(pd.DataFrame({"amount": [], "date": []})).empty


def test_batch_of_1000_requests(trained):
    frame, _ = trained.holdout
    batch = frame.head(1000)[["txn_date", "amount", "category", "description", "payment_method", "reference"]]
    batch = batch.rename(columns={"txn_date": "date"}).set_index(
        pd.Index([f"r{i}" for i in range(len(batch))])
    )
    started = time.perf_counter()
    pred = trained.model.predict(batch)
    elapsed = time.perf_counter() - started
    assert len(pred) == 1000 and pred.index.equals(batch.index)
    assert pred["anomaly_score"].between(0, 1).all()
    print(f"batch of 1000 predicted in {elapsed:.3f}s")


def test_pickle_round_trip_predicts_identically(trained):
    frame, _ = trained.holdout
    clone = pickle.loads(pickle.dumps(trained.model))
    pd.testing.assert_frame_equal(clone.predict(frame), trained.model.predict(frame))


# --------------------------------------------------------------------------- threshold
def test_choose_threshold_best_f1_and_precision_target():
    scores = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.2, 0.1])
    labels = np.array([1, 1, 0, 1, 0, 0, 1, 0], dtype=bool)
    cut = anomaly.choose_threshold(scores, labels)
    assert 0.6 < cut <= 0.7  # flag the top four: precision 3/4, recall 3/4 is the best F1
    strict = anomaly.choose_threshold(scores, labels, precision_target=1.0)
    assert 0.8 < strict <= 0.9
    with pytest.raises(TrainingDataError):
        anomaly.choose_threshold(scores, np.zeros(8, dtype=bool))


def test_threshold_comes_from_validation(trained, injected):
    """Not a constant: it follows the validation data (here ground truth vs injected anomalies)."""
    t1, t2 = trained.model.threshold, injected.model.threshold
    assert 0 < t1 < 1 and 0 < t2 < 1 and t1 != pytest.approx(t2)
    assert trained.params["validation_anomalies"] > 0 and trained.params["threshold_objective"] == "f1"
    assert trained.metrics["threshold"] == t1


# --------------------------------------------------------------------------- no labels
def test_injected_evaluation_without_labels(injected):
    assert injected.params["evaluation"] == "injected"
    m = injected.metrics
    _, best_ap = injected.best_baseline(anomaly.PRIMARY_METRIC, anomaly.HIGHER_IS_BETTER)
    assert m["average_precision"] > best_ap
    assert m["roc_auc"] > 0.9
    kinds = injected.params["injected_test_kinds"]
    assert set(kinds) == set(anomaly.INJECTED_KINDS) and all(v > 0 for v in kinds.values())
    assert any("injected" in n for n in injected.notes)


def test_inject_anomalies(ledger):
    df, _ = ledger
    df = df.iloc[:6000]
    out, labels, kinds = anomaly.inject_anomalies(df, rate=0.02, seed=5)
    assert len(out) == len(labels) == len(kinds) and len(out) > len(df)
    assert out.index.is_unique and out.index[: len(df)].equals(df.index)
    assert set(kinds[labels]) == set(anomaly.INJECTED_KINDS) and (pd.isna(kinds) == ~labels).all()
    e = df[(df["txn_type"] == "Expense") & df["merchant"].notna()]
    medians = e.groupby("merchant")["amount"].agg(lambda a: np.exp(np.median(np.log(a.abs()))))
    spikes = out[kinds == "amount_spike"]
    ratio = spikes["amount"].abs().to_numpy() / medians.reindex(spikes["merchant"]).to_numpy()
    assert ((ratio > 7.9) & (ratio < 20.1)).all()
    news = out[np.isin(kinds, ["small_charge_burst", "new_merchant_large"])]
    assert not news["merchant"].isin(set(df["merchant"].dropna())).any()
    assert out.loc[kinds == "small_charge_burst", "amount"].between(-5, -0.5).all()
    dup = out[kinds == "duplicate_charge"]
    cols = ["txn_date", "account", "description", "amount", "reference"]
    assert dup[cols].merge(df[cols], how="left", indicator=True)["_merge"].eq("both").all()
    moved = pd.to_datetime(out.loc[kinds == "unusual_day", "txn_date"])
    assert (moved.dt.day_of_week >= 5).all()
    same, _, _ = anomaly.inject_anomalies(df, rate=0.02, seed=5)
    pd.testing.assert_frame_equal(same, out)  # deterministic for a seed


# --------------------------------------------------------------------------- small data, edges
def test_small_ledger_trains(tmp_path):
    generate(
        tmp_path / "raw",
        rows=150,
        years=4 / 12,
        accounts=("ledger",),
        seed=4,
        end_date=END,
        labels_dir=tmp_path / "labels",
    )
    df, _ = load_exports(tmp_path / "raw")
    df = df[df["txn_type"] == "Expense"].sort_values("txn_date")
    df = df.iloc[np.linspace(0, len(df) - 1, 100).round().astype(int)]  # 100 rows spread over the span
    assert (
        len(df) == 100
        and (pd.to_datetime(df["txn_date"]).max() - pd.to_datetime(df["txn_date"]).min()).days > 90
    )
    result = anomaly.train(df)
    assert result.params["evaluation"] == "injected"
    assert np.isfinite(result.metrics["average_precision"]) and 0 < result.metrics["threshold"] < 1
    assert any("small history" in n for n in result.notes)
    assert any("categories with under" in n for n in result.notes)  # rare categories fall back
    pred = result.model.predict(
        pd.DataFrame({"amount": [-20.0], "date": ["2025-07-01"], "category": ["unheard_of"]})
    )
    assert pred["anomaly_score"].between(0, 1).all()


def test_too_little_data_and_misaligned_labels(ledger):
    df, kinds = ledger
    with pytest.raises(TrainingDataError):
        anomaly.train(df.head(30))
    with pytest.raises(ValueError):
        anomaly.train(df.head(500), kinds.notna().to_numpy()[:10])


def test_the_model_reads_the_shared_row_features(ledger):
    """The isolation forest's row features are features.row_features, row for row."""
    df, _ = ledger
    df = df.iloc[:3000].copy()
    df.loc[df.index[:20], "reference"] = None
    df.loc[df.index[20:30], "reference"] = "   "
    vocabulary = Vocabulary.from_seeds()
    expected = prepare(df, vocabulary).reset_index(drop=True)
    canon = _canon(df, vocabulary)
    rf = row_features(expected)
    for col in _IF_COLUMNS:
        np.testing.assert_allclose(canon[f"rf_{col}"], rf[col].to_numpy(), err_msg=col)


# --------------------------------------------------------------------------- the request (small-frame) path
def test_requests_score_exactly_as_the_batch_path(trained, monkeypatch):
    """A request (up to features.SMALL rows) is scored on plain columns: dict lookups of the fitted
    tables and the isolation trees walked in numpy; scores, levels and reasons are the batch path's for
    the same rows (in-frame context included: each part is scored as one request)."""
    from titans_assets.lib.ml import features as F

    model = trained.model
    frame, _ = trained.holdout
    frame = frame.head(1500)
    requests = frame[
        [
            "txn_date",
            "amount",
            "category",
            "description",
            "payment_method",
            "reference",
            "account",
            "txn_type",
        ]
    ].rename(columns={"txn_date": "date"})
    requests = requests.assign(date=pd.to_datetime(requests["date"]).dt.strftime("%Y-%m-%d"))
    requests.iloc[::3, requests.columns.get_loc("reference")] = None
    requests.iloc[::7, requests.columns.get_loc("category")] = None
    requests.iloc[::11, requests.columns.get_loc("description")] = None
    bare = requests[["date", "amount"]].iloc[::9]
    sizes = (1, 1, 2, 5, 16, F.SMALL)
    parts, start, i = [], 0, 0
    while start < len(requests):
        parts.append(requests.iloc[start : start + sizes[i % len(sizes)]])
        start += sizes[i % len(sizes)]
        i += 1
    parts += [bare.iloc[[j]] for j in range(40)] + [pd.concat([requests.iloc[[5]]] * 3)]  # a request repeated
    fast = [model.predict(p) for p in parts]
    fast_components = [model.components(p) for p in parts[:60]]
    monkeypatch.setattr(F, "SMALL", -1)  # from here on every frame takes the batch path
    flagged = 0
    for p, got in zip(parts, fast):
        want = model.predict(p)
        pd.testing.assert_frame_equal(got, want, check_exact=True)
        assert got["reasons"].tolist() == want["reasons"].tolist()
        flagged += int(got["reasons"].map(len).gt(0).sum())
    for p, got in zip(parts[:60], fast_components):
        pd.testing.assert_frame_equal(got, model.components(p), check_exact=True)
    assert flagged >= 5  # the comparison covered reasons, not only scores


def test_the_numpy_isolation_trees_equal_the_forest(trained):
    model = trained.model
    frame, _ = trained.holdout
    c = _canon(frame.head(3000), model.vocabulary)
    x = model._isolation_frame(c, model._components(c, isolation=False))
    odd = x.copy()
    odd[::5, 3] = np.nan
    odd[::7] *= 1.0 + 1e-7
    fast = _Forest(model.forest)
    for matrix in (x, odd):
        expected = -model.forest.score_samples(matrix)
        got = np.concatenate([fast.scores(matrix[i : i + 13]) for i in range(0, len(matrix), 13)])
        np.testing.assert_array_equal(got, expected)


def test_one_row_scalar_path_equals_the_batch_path_row_by_row(trained, monkeypatch):
    """A single row (a /predict/anomaly request) is scored on Python scalars (`request.predict_one`). Every
    row of a generated holdout, plus variants a request can send (no reference, no category, no
    description, income, bare amount + date, an amount of 0, missing amount or date, unknown
    merchants), alone: the same score, flag, level and reasons as the batch path, whether given as a
    DataFrame, as plain columns (what the service passes) or through the service's converter."""
    from titans_assets.lib.ml import features as F
    from titans_assets.lib.serving import predict as serving

    model = trained.model
    frame, labels = trained.holdout
    rng = np.random.default_rng(5)
    flagged_rows = np.flatnonzero(np.asarray(labels, dtype=bool))[:80]
    picked = np.unique(np.concatenate([rng.choice(len(frame), size=220, replace=False), flagged_rows]))
    base = frame.iloc[picked][
        [
            "txn_date",
            "amount",
            "category",
            "description",
            "payment_method",
            "reference",
            "account",
            "txn_type",
        ]
    ].reset_index(drop=True)
    variants = [base]
    for drop in ("reference", "category", "description", "payment_method"):
        variants.append(base.iloc[::4].assign(**{drop: None}))
    variants.append(base.iloc[::5][["txn_date", "amount"]])  # a bare request
    odd = base.iloc[:12].copy()
    odd["amount"] = [0.0, np.nan, 4.99, -4.99, 1e9, -1e9, -0.01, 12.0, -3.0, -4999.0, np.nan, 250.0]
    odd.loc[odd.index[1::3], "txn_date"] = None
    odd.loc[odd.index[::2], "reference"] = (
        "never seen merchant #" + pd.Series(range(6)).astype(str).to_numpy()
    )
    odd.loc[odd.index[3], "txn_type"] = "Income"
    variants.append(odd)
    rows = pd.concat(variants, ignore_index=True)
    requests = rows.drop(columns=["account", "txn_type"]).assign(
        txn_date=pd.to_datetime(rows["txn_date"])
        .dt.strftime("%Y-%m-%d")
        .where(rows["txn_date"].notna(), None)
    )

    def alone(df):
        return [model.predict(df.iloc[[i]]) for i in range(len(df))]

    def as_columns(df):  # what the service passes for one request
        return [
            {c: np.array([df[c].iloc[i]], dtype=float if c == "amount" else object) for c in df.columns}
            for i in range(len(df))
        ]

    fast = alone(rows)
    fast_requests = [model.predict_columns(cols) for cols in as_columns(requests)]
    request_rows = [
        {k: (None if pd.isna(v) else v) for k, v in r.items()} for r in requests.to_dict("records")
    ]
    served = [serving.anomaly(model, [r])[0] for r in request_rows]
    chunks = [request_rows[i : i + F.SMALL] for i in (0, 300)]  # a few rows: plain columns, in-frame context
    served_small = [serving.anomaly(model, chunk) for chunk in chunks]
    monkeypatch.setattr(F, "SMALL", -1)  # from here on every frame takes the batch path
    want = alone(rows)
    want_requests = alone(requests)
    reasons = 0
    for got, expected in zip(fast, want):
        pd.testing.assert_frame_equal(got, expected, check_exact=True)
        assert got["reasons"].tolist() == expected["reasons"].tolist()
        reasons += len(got["reasons"].iloc[0]) > 0
    for got, expected, body in zip(fast_requests, want_requests, served):
        pd.testing.assert_frame_equal(pd.DataFrame(got, index=expected.index), expected, check_exact=True)
        row = expected.iloc[0]
        assert body == {
            "is_anomaly": bool(row["is_anomaly"]),
            "anomaly_score": float(row["anomaly_score"]),
            "risk_level": row["risk_level"],
            "reasons": list(row["reasons"]),
        }
    assert reasons >= 40  # reasons were compared, not only scores
    assert served_small == [serving.anomaly(model, chunk) for chunk in chunks]
    assert len({r["risk_level"] for r in served}) == 3
