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
    out = I.permutation_importance(
        _score, None, frame, ["b", "a", "missing"], "mae", higher_is_better=False, repeats=3, seed=seed
    )
    assert out["supported"] and out["base_score"] == 0.0 and out["rows"] == 300 and out["repeats"] == 3
    by = {f["feature"]: f for f in out["features"]}
    assert set(by) == {"a", "b"}  # a column the holdout lacks is not invented
    assert (
        by["a"]["importance_mean"] > 1.0
        and by["b"]["importance_mean"] == 0.0
        and by["b"]["importance_std"] == 0.0
    )
    assert [f["feature"] for f in out["features"]] == ["a", "b"]  # most important first


def test_tuple_holdouts_keep_their_labels_aligned_when_sampled():
    frame = _frame(900, 1)
    out = I.permutation_importance(
        _score,
        None,
        (frame.drop(columns="y"), frame["y"].to_numpy()),
        ["a", "b"],
        "mae",
        higher_is_better=False,
        max_rows=200,
    )
    assert out["rows"] == 200 and out["base_score"] == 0.0  # rows and labels sampled together
    assert I.worsening(0.8, 0.6, higher_is_better=True) == pytest.approx(0.2)
    assert I.worsening(10.0, 12.0, higher_is_better=False) == 2.0


def test_a_series_holdout_says_it_has_no_columns():
    out = I.permutation_importance(_score, None, pd.Series([1.0, 2.0]), ["a"], "mase", higher_is_better=False)
    assert out == {
        "supported": False,
        "metric": "mase",
        "reason": "the holdout is a single series (no input columns to permute)",
    }
    daily = pd.DataFrame({"metric_date": pd.date_range("2026-01-01", periods=3), "net_flow": [1.0, 2.0, 3.0]})
    out = I.permutation_importance(_score, None, daily, ["horizon_days"], "mase", higher_is_better=False)
    assert out["supported"] is False and "none of the request columns (horizon_days)" in out["reason"]


# ---------------------------------------------------------------------------------------------- page data (pure)
def _t(
    run_id,
    started,
    version,
    metrics,
    stage="challenger",
    promoted=None,
    decision=None,
    reason=None,
    params=None,
):
    from titans_assets.lib.dashboard.models import Training

    return Training(
        run_id=run_id,
        started=started,
        stage=stage,
        kind="model" if stage == "challenger" else "baseline:category_median",
        version=version,
        metrics=metrics,
        params=params or {},
        decision=decision,
        promoted=promoted,
        promotion_reason=reason,
    )


def test_history_rows_put_each_challenger_beside_its_best_baseline_and_the_champion_it_met():
    from titans_assets.lib.dashboard import models as M

    runs = [
        _t(
            "r2",
            "2026-06-02T00:00:00+00:00",
            "2",
            {
                "mae": 9.0,
                "baseline.median.mae": 12.0,
                "baseline.lookup.mae": 10.0,
                "champion.mae": 11.0,
                "interval_coverage": 0.88,
            },
            promoted=True,
            decision="promoted: ...",
            reason="promoted: mae 9",
            params={"level": "0.9"},
        ),
        _t(
            "r1",
            "2026-06-01T00:00:00+00:00",
            "1",
            {"mae": 11.0, "baseline.median.mae": 13.0, "interval_coverage": 0.93},
            promoted=True,
            decision="promoted: first",
            reason="promoted: first",
            params={"level": "0.9"},
        ),
        _t(
            "r3",
            "2026-06-03T00:00:00+00:00",
            "3",
            {"mae": 15.0},
            stage="baseline",
            reason="not promoted: ...",
        ),
    ]
    rows = M.history_rows(runs, "mae", higher_is_better=False, champion_version="2")
    assert [
        (
            r["version"],
            r["challenger"],
            r["best_baseline"],
            r["best_baseline_value"],
            r["champion_same_holdout"],
            r["serving"],
        )
        for r in rows
    ] == [("1", 11.0, "median", 13.0, None, False), ("2", 9.0, "lookup", 10.0, 11.0, True)]
    assert M.best_baseline(
        {"baseline.a.f1": 0.5, "baseline.b.f1": 0.7, "baseline.b.f1_x": 0.9}, "f1", True
    ) == ("b", 0.7)
    assert M.best_baseline({}, "f1", True) == (None, None)
    assert [r["version"] for r in M.served_rows(runs, "mae")] == ["1", "2", "3"]
    assert M.quality_series(runs, "amount") == [
        {"started": "2026-06-01T00:00:00+00:00", "version": "1", "value": 0.93, "nominal": 0.9},
        {"started": "2026-06-02T00:00:00+00:00", "version": "2", "value": 0.88, "nominal": 0.9},
    ]
    assert M.quality_series(runs, "anomaly") == []


def test_holdout_comparison_is_metric_by_metric_primary_first():
    from titans_assets.lib.dashboard import models as M

    rows = M.holdout_comparison(
        {
            "r2": 0.5,
            "mae": 9.0,
            "champion.mae": 11.0,
            "baseline.median.mae": 12.0,
            "baseline.median.r2": 0.1,
            "champion.r2": float("nan"),
        },
        "mae",
    )
    assert rows == [
        {"metric": "mae", "challenger": 9.0, "champion (same holdout)": 11.0, "baseline median": 12.0},
        {"metric": "r2", "challenger": 0.5, "champion (same holdout)": None, "baseline median": 0.1},
    ]
    assert M.importance_rows(None) == [] and M.importance_rows({"supported": False, "reason": "x"}) == []
    assert M.importance_rows(
        {
            "supported": True,
            "features": [
                {"feature": "a", "importance_mean": 2.0, "importance_std": 0.1},
                {"feature": "b", "importance_mean": None, "importance_std": None},
            ],
        }
    ) == [{"feature": "a", "importance": 2.0, "std": 0.1}]


# ---------------------------------------------------------------------------------------------- a real registry
@pytest.fixture(scope="module")
def world(embedded_db, tmp_path_factory):
    """Real trainings in a real registry (MLflow on a scratch PostgreSQL database), each evaluated and
    promoted with the rules the assets use: amount twice (an older window, then all the data), the other
    three once; every challenger's permutation importance logged as the challenger asset logs it."""
    import datetime as dt

    from conftest import TEST_TODAY, scratch_database, warehouse_rows
    from support import new_home

    from titans_assets.lib.generator import generate
    from titans_assets.lib.ml import amount, anomaly, cashflow, catalog, category, data
    from titans_assets.lib.ml.importance import log_importance
    from titans_assets.lib.ml.promotion import Challenger, move_alias, rescore_and_decide, serving_verdict
    from titans_assets.lib.ml.tracking import Registry
    from titans_assets.lib.settings import Settings

    root = new_home("titans-models-")
    landing = root / "data" / "raw"
    generate(landing, rows=1500, seed=21, end_date=TEST_TODAY, labels_dir=root / "data" / "labels")
    frame = warehouse_rows(landing)
    older = frame[pd.to_datetime(frame["txn_date"]) <= pd.Timestamp(TEST_TODAY - dt.timedelta(days=120))]
    with scratch_database(embedded_db) as db, pytest.MonkeyPatch.context() as mp:
        env = {
            "TITANS_HOME": str(root / "home"),
            "TITANS_LANDING_DIR": str(landing),
            "TITANS_DATABASE_URL": db.url,
        }
        for k, v in env.items():
            mp.setenv(k, v)
        mp.delenv("TITANS_MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("TITANS_MLFLOW_ARTIFACTS", raising=False)
        settings = Settings.from_env()
        registry = Registry.from_settings(settings, db)
        fast_amount = {"max_iter": 80, "oof_folds": 2, "text_hash_features": 2**14}
        trainings = [
            ("amount", lambda: amount.train(older, **fast_amount)),
            ("amount", lambda: amount.train(frame, **fast_amount)),
            ("category", lambda: category.train(frame)),
            ("anomaly", lambda: anomaly.train(frame)),
            (
                "cashflow",
                lambda: cashflow.train(
                    data.daily_series(frame), candidates=("seasonal_naive_7", "mean_28"), n_origins=3
                ),
            ),
        ]
        for key, train in trainings:
            spec = catalog.BY_KEY[key]
            result = train()
            run_id, version = registry.log_training(spec.name, result, spec.example_frame())
            log_importance(registry, run_id, spec, result)
            trained = Challenger(run_id, version, result)
            decision = rescore_and_decide(spec, registry, trained)  # the steps the ml assets take
            move_alias(spec, registry, serving_verdict(spec, registry, trained, decision))
        yield {"db": db, "env": env, "registry": registry, "root": root}
    import shutil

    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.integration
def test_the_registry_history_holds_every_decision_and_the_importance(world):
    from titans_assets.lib.dashboard import models as M
    from titans_assets.lib.ml.catalog import BY_KEY

    registry = world["registry"]
    spec = BY_KEY["amount"]
    trainings = M.read_trainings(registry, spec.name)
    rows = M.history_rows(
        trainings, spec.primary_metric, spec.higher_is_better, registry.champion_version(spec.name).version
    )
    assert len(rows) == 2 and rows[0]["version"] == "1" and rows[0]["started"] <= rows[1]["started"]
    first, second = rows
    assert first["champion_same_holdout"] is None  # nothing served before the first training
    for row in rows:
        run = registry.client.get_run(row["run_id"])
        assert row["decision"] == run.data.tags["titans.decision"]
        assert row["challenger"] == pytest.approx(run.data.metrics["mae"])
        assert row["best_baseline_value"] == pytest.approx(
            run.data.metrics[f"baseline.{row['best_baseline']}.mae"]
        )
    # The second training met the champion of the day on its own holdout, as the registry recorded it.
    run2 = registry.client.get_run(second["run_id"])
    assert second["champion_same_holdout"] == pytest.approx(run2.data.metrics["champion.mae"])
    champion = registry.champion(spec.name, load=False)
    served = M.served_rows(trainings, spec.primary_metric)
    assert served and served[-1]["reason"] in {r["decision"] for r in rows}
    assert sum(r["serving"] for r in rows) == (champion.kind == "model")
    importance = M.read_importance(registry, second["run_id"])
    assert importance["supported"] and importance["metric"] == "mae"
    assert {f["feature"] for f in importance["features"]} <= set(spec.example_frame().columns)
    assert max(f["importance_mean"] for f in importance["features"]) > 0  # the model reads something
    cash = M.read_importance(registry, M.read_trainings(registry, BY_KEY["cashflow"].name)[0].run_id)
    assert cash["supported"] is False
    coverage = M.quality_series(trainings, "amount")
    assert len(coverage) == 2 and all(0 <= c["value"] <= 1 and c["nominal"] == 0.9 for c in coverage)


@pytest.fixture
def app(world, monkeypatch):
    import streamlit as st
    from conftest import ROOT
    from streamlit.testing.v1 import AppTest

    st.cache_data.clear()
    monkeypatch.setenv("TITANS_SERVICE_URL", "http://127.0.0.1:9")  # no service: this page does not need one

    def make(model: str | None = None) -> AppTest:
        at = AppTest.from_file(str(ROOT / "titans_assets" / "dashboard" / "app.py"), default_timeout=180)
        at.run()
        at.switch_page("pages/models.py")
        at.run()
        if model:
            at.sidebar.selectbox(key="models_model").set_value(model).run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return make


def _texts(at) -> str:
    return "\n".join(
        str(e.value)
        for kind in ("info", "warning", "error", "caption", "markdown", "subheader")
        for e in getattr(at, kind)
    )


@pytest.mark.integration
def test_the_model_page_shows_decisions_comparison_importance_and_coverage(world, app):
    import json

    from titans_assets.lib.ml.catalog import BY_KEY

    registry = world["registry"]
    at = app("amount (titans_amount)")
    champ = registry.champion("titans_amount", load=False)
    assert {m.label: m.value for m in at.metric}["Champion"] == f"v{champ.version} ({champ.kind})"
    assert {m.label: m.value for m in at.metric}["Trainings"] == "2"
    subheaders = [s.value for s in at.subheader]
    assert subheaders == [
        "Promotion decisions over time",
        "Challenger vs champion, same holdout",
        "Feature importance (permutation, on the holdout)",
        "Interval coverage",
    ]
    history = at.dataframe[0].value
    runs = registry.client.search_runs(
        [registry.client.get_experiment_by_name("titans").experiment_id],
        "tags.`titans.model` = 'titans_amount' and tags.`titans.stage` = 'challenger'",
    )
    assert set(history["decision"]) == {r.data.tags["titans.decision"] for r in runs}
    comparison = at.dataframe[-1].value if len(at.dataframe) == 2 else at.dataframe[2].value
    assert comparison.iloc[0]["metric"] == "mae"
    latest = max(runs, key=lambda r: r.info.start_time)
    assert comparison.iloc[0]["challenger"] == pytest.approx(latest.data.metrics["mae"])
    assert comparison.iloc[0]["champion (same holdout)"] == pytest.approx(latest.data.metrics["champion.mae"])
    charts = [json.loads(c.proto.spec)["data"] for c in at.get("plotly_chart")]
    assert [t["name"] for t in charts[0]][:2] == ["challenger", "best baseline"]
    assert any(t.get("type") == "bar" and t.get("orientation") == "h" for chart in charts for t in chart)
    assert any(t.get("name") == "nominal level" for chart in charts for t in chart)

    at = app("category (titans_category)")
    assert "Calibration" in [s.value for s in at.subheader]
    assert "expected calibration error" in json.dumps(
        [json.loads(c.proto.spec)["layout"] for c in at.get("plotly_chart")]
    )
    assert at.get("image"), "a calibration plot (the champion's, else the latest challenger's)"
    at = app("cashflow (titans_cashflow)")
    assert "no input columns to permute" in _texts(at)
    assert BY_KEY["cashflow"].primary_metric in _texts(at) or at.metric


@pytest.fixture
def models_dashboard(world):
    """`titans dashboard` as a user starts it, on a free port; stopped after the page's screenshot
    (this fixture is set up before `page`, so it is torn down after it)."""
    import signal
    import subprocess
    import sys

    from conftest import ROOT, child_env
    from support import free_port, get_until_up

    port = free_port()
    env = child_env("TITANS_", "DAGSTER_") | world["env"] | {"TITANS_SERVICE_URL": "http://127.0.0.1:9"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "titans_assets.cli", "dashboard", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert get_until_up(f"http://127.0.0.1:{port}/_stcore/health", proc, timeout=180) == "ok"
        yield f"http://127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # titans passes it on to streamlit and waits for it
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.mark.integration
@pytest.mark.browser
def test_the_model_page_in_headless_chromium(models_dashboard, page):
    page.goto(models_dashboard)
    page.get_by_role("link", name="Models").click()
    page.get_by_text("Promotion decisions over time").wait_for()
    page.get_by_text("Challenger vs champion, same holdout").wait_for()
    page.get_by_text("Feature importance (permutation, on the holdout)").wait_for()
    page.locator(".js-plotly-plot").first.wait_for()
    page.locator('[data-testid="stDataFrame"]').first.wait_for()
