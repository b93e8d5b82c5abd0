"""The four models on real public ledgers (../shared/devdata/ledgers/) and on one generated ledger, each
trained as its asset trains it, beside plain baselines; prints markdown for docs/models.md.

    .venv/bin/python benchmarks/real_ledgers.py [--devdata ../shared/devdata] [--end-date 2025-06-30] [--seed 7]

Every ledger is converted to the seed CSV format by a converter for its file TYPE (a bank CSV with a
header, a Ledger journal, a QIF file), never for one file: the columns are found by their header names,
the sign convention by which sign most categorised rows carry, the category is the file's own label
(the Expenses:/Income: account of a journal, the L field of QIF). The converted rows are written to a
temporary landing folder and read back with lib/ml/data.frame_from_csvs (the input contract's parser
and the warehouse's label normalization), then each model's train() runs through
lib/ml/catalog.train_on, which makes its own chronological split: the latest ~20% of days are the
holdout. The baselines are fitted on the same training rows and scored on the same holdout:

- category: majority class, description lookup (the model's own baselines) and TF-IDF (character
  2-4 and word 1-2 grams of description + reference) + one-hot payment method + log|amount| into
  scikit-learn's LinearSVC with its defaults;
- amount: global, category and description medians (cleaned description seen in training, else the
  category median, else the global median; all three the model's own baselines, which its gate
  compares it with); MAE, and 90% interval coverage for ours;
- cash flow (ledgers with >= 1 year of daily history, else "series too short"): MASE on the model's
  evaluation origins for the model, historic mean (mean of every day before the origin), seasonal
  naive(7) and AutoETS (statsforecast, backtested on the same origins);
- anomaly: amounts scaled x4-10 on a seeded random 2% of the holdout rows (at least one), repeated
  over `--repeats` seeds; mean ROC-AUC and average precision of the model and of the robust z of
  log|amount| within category (the model's `category_zscore` baseline), and the share of holdout rows
  the model flags (what a person would have to review).

The rows of these ledgers are never printed: only counts and metrics. When the devdata folder is
absent the generated ledger alone would say nothing about real data, so the script says so and exits 0.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ledger_files import (  # noqa: E402 - shared with the other real-ledger benchmarks
    ONE_YEAR_DAYS,
    convert,
    write_seed_csv,
)


# --------------------------------------------------------------------------- baselines the models lack
def _svc_matrix(fitted, rows: pd.DataFrame):
    import scipy.sparse as sp

    char, word, onehot = fitted
    text = (rows["description"].fillna("") + " " + rows["reference"].fillna("")).to_numpy(dtype=object)
    pm = rows["payment_method"].fillna("").to_numpy(dtype=object).reshape(-1, 1)
    log_amount = np.log1p(np.abs(rows["amount"].fillna(0.0).to_numpy(dtype=float))).reshape(-1, 1)
    return sp.hstack(
        [char.transform(text), word.transform(text), onehot.transform(pm), sp.csr_matrix(log_amount)],
        format="csr",
    )


def linear_svc_baseline(train_p: pd.DataFrame, test_p: pd.DataFrame) -> dict[str, float]:
    """TF-IDF (char 2-4, word 1-2 grams) of description + reference, one-hot payment method and
    log|amount| into LinearSVC with scikit-learn's defaults: accuracy, macro-F1 (over the test labels,
    as the model's) and top-3 accuracy (by decision value)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics import f1_score
    from sklearn.preprocessing import OneHotEncoder
    from sklearn.svm import LinearSVC

    text = (train_p["description"].fillna("") + " " + train_p["reference"].fillna("")).to_numpy(dtype=object)
    char = TfidfVectorizer(analyzer="char", ngram_range=(2, 4)).fit(text)
    word = TfidfVectorizer(analyzer="word", ngram_range=(1, 2)).fit(text)
    onehot = OneHotEncoder(handle_unknown="ignore").fit(
        train_p["payment_method"].fillna("").to_numpy(dtype=object).reshape(-1, 1)
    )
    fitted = (char, word, onehot)
    y = train_p["category"].to_numpy(dtype=object)
    with warnings.catch_warnings():  # defaults on purpose: liblinear may stop at its iteration limit
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = LinearSVC().fit(_svc_matrix(fitted, train_p), y)
    decision = clf.decision_function(_svc_matrix(fitted, test_p))
    if decision.ndim == 1:  # two classes
        decision = np.column_stack([-decision, decision])
    y_test = test_p["category"].to_numpy(dtype=object)
    pred = clf.classes_[decision.argmax(axis=1)]
    k = min(3, decision.shape[1])
    top = clf.classes_[np.argsort(-decision, axis=1)[:, :k]]
    return {
        "accuracy": float(np.mean(pred == y_test)),
        "macro_f1": float(f1_score(y_test, pred, labels=np.unique(y_test), average="macro", zero_division=0)),
        "top3_accuracy": float(np.mean([t in row for t, row in zip(y_test, top)])),
    }


# --------------------------------------------------------------------------- one ledger
def _fmt(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:,.{digits}f}"


def bench_category(frame: pd.DataFrame) -> tuple[list[list[str]], dict]:
    from titans_assets.lib.ml import catalog
    from titans_assets.lib.ml import category as C
    from titans_assets.lib.ml import features as F
    from titans_assets.lib.ml.common import TrainingDataError
    from titans_assets.lib.ml.promotion import decide

    spec = catalog.BY_KEY["category"]
    try:
        result = catalog.train_on(spec, transactions=frame)
    except TrainingDataError as exc:
        return [["category", "-", f"not trained: {exc}", "", ""]], {}
    test_p = result.holdout
    labelled = C.labelled_rows(frame, F.Vocabulary.from_seeds())
    train_p = labelled[labelled["txn_date"] < test_p["txn_date"].min()]
    svc = linear_svc_baseline(train_p, test_p)
    m, b = result.metrics, result.baselines
    d = decide(spec.primary_metric, spec.higher_is_better, m, b)
    served = "model" if d.served == "model" else d.served
    head = f"{int(m['n_train'])} train / {int(m['n_test'])} test rows, {int(m['n_classes'])} classes; serves {served}"
    rows = []
    for metric, label in (
        ("accuracy", "accuracy"),
        ("macro_f1", "macro-F1"),
        ("top3_accuracy", "top-3 accuracy"),
    ):
        rows.append(
            [
                "category",
                label,
                _fmt(m[metric]),
                f"majority {_fmt(b['majority'][metric])} · description lookup "
                f"{_fmt(b['description_lookup'][metric])} · TF-IDF+LinearSVC {_fmt(svc[metric])}",
                head if metric == "accuracy" else "",
            ]
        )
    rows.append(["category", "ECE", _fmt(m["ece"]), "", "10 equal-width confidence bins"])
    return rows, {
        "ours": m["accuracy"],
        "svc": svc["accuracy"],
        "ours_f1": m["macro_f1"],
        "svc_f1": svc["macro_f1"],
    }


def bench_amount(frame: pd.DataFrame) -> tuple[list[list[str]], dict]:
    from titans_assets.lib.ml import amount as A
    from titans_assets.lib.ml import catalog
    from titans_assets.lib.ml.common import TrainingDataError
    from titans_assets.lib.ml.promotion import decide

    spec = catalog.BY_KEY["amount"]
    try:
        result = catalog.train_on(spec, transactions=frame)
    except TrainingDataError as exc:
        return [["amount", "MAE", f"not trained: {exc}", "", ""]], {}
    m, b = result.metrics, result.baselines
    desc = b["description_median"]["mae"]  # the module's own baseline (amount.DescriptionMedianBaseline)
    best = min(
        [
            ("global median", b["global_median"]["mae"]),
            ("category median", b["category_median"]["mae"]),
            ("description median", desc),
        ],
        key=lambda kv: kv[1],
    )
    d = decide(spec.primary_metric, spec.higher_is_better, m, b)
    n_exp = len(A.expense_rows(frame))
    gate = "the model" if d.served == "model" else d.served
    note = (
        f"{n_exp} expense rows ({int(m['n_train'])} train / {int(m['n_test'])} test); "
        f"{'beats' if m['mae'] < best[1] else 'does not beat'} the best median ({best[0]}); "
        f"the gate serves {gate}"
    )
    rows = [
        [
            "amount",
            "MAE",
            _fmt(m["mae"], 2),
            f"global median {_fmt(b['global_median']['mae'], 2)} · category median "
            f"{_fmt(b['category_median']['mae'], 2)} · description median {_fmt(desc, 2)}",
            note,
        ],
        [
            "amount",
            "90% interval coverage",
            _fmt(m["interval_coverage"]),
            "",
            f"description-only requests {_fmt(m.get('description_only_interval_coverage'))}",
        ],
    ]
    return rows, {"ours": m["mae"], "best": best[1], "coverage": m["interval_coverage"], "n_expense": n_exp}


def bench_cashflow(frame: pd.DataFrame) -> tuple[list[list[str]], dict]:
    from titans_assets.lib.ml import cashflow as CF
    from titans_assets.lib.ml import catalog, data
    from titans_assets.lib.ml.common import TrainingDataError

    daily = data.daily_series(frame)
    days = len(daily)
    if days < ONE_YEAR_DAYS:
        return [
            ["cash flow", "MASE", "series too short", "", f"{days} days of history (< {ONE_YEAR_DAYS})"]
        ], {}
    try:
        result = catalog.train_on(catalog.BY_KEY["cashflow"], daily=daily)
    except TrainingDataError as exc:
        return [["cash flow", "MASE", f"not trained: {exc}", "", ""]], {}
    series, _ = CF.daily_series(daily)
    y = series["net_flow"].to_numpy(dtype=float)
    config = result.model.config
    plan = CF.origin_plan(len(y), config)
    hist = []
    for o in plan.evaluation:
        scale = float(np.mean(np.abs(y[CF.SEASON : o] - y[: o - CF.SEASON])))
        err = float(np.mean(np.abs(y[o : o + config.horizon] - np.mean(y[:o]))))
        if scale > 0:
            hist.append(err / scale)
    historic_mean = float(np.mean(hist)) if hist else float("nan")
    first = pd.Timestamp(series["metric_date"].iloc[0])
    try:
        ets_bt = CF.run_backtest("ets", y, first, config, plan.evaluation)
        ets = CF.evaluate(ets_bt, y, config.level)["mase"]
    except Exception as exc:  # noqa: BLE001 - a baseline that cannot run is reported, not fatal
        ets = float("nan")
        print(f"  AutoETS failed: {type(exc).__name__}", file=sys.stderr)
    m, b = result.metrics, result.baselines
    note = (
        f"{days} days; method {result.params['method']} chosen on {result.params['n_selection_origins']} "
        f"earlier origins, scored on {result.params['n_evaluation_origins']} later ones; "
        f"90% interval coverage {_fmt(m['interval_coverage'])}"
    )
    rows = [
        [
            "cash flow",
            "MASE",
            _fmt(m["mase"]),
            f"historic mean {_fmt(historic_mean)} · seasonal naive(7) {_fmt(b['seasonal_naive_7']['mase'])} · "
            f"mean 28 days {_fmt(b['mean_28']['mase'])} · AutoETS {_fmt(ets)}",
            note,
        ]
    ]
    return rows, {"ours": m["mase"], "historic_mean": historic_mean, "snaive": b["seasonal_naive_7"]["mase"]}


def bench_anomaly(
    frame: pd.DataFrame, labels_dir: Path | None, repeats: int, seed: int
) -> tuple[list[list[str]], dict]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    from titans_assets.lib.ml import catalog, data
    from titans_assets.lib.ml.common import TrainingDataError

    try:
        result = catalog.train_on(catalog.BY_KEY["anomaly"], transactions=frame, labels_dir=labels_dir)
    except TrainingDataError as exc:
        return [["anomaly", "ROC-AUC", f"not trained: {exc}", "", ""]], {}
    test = frame[frame["txn_date"] >= pd.Timestamp(result.data_window["test_start"])]
    truth = data.anomaly_labels(frame, labels_dir) if labels_dir is not None else None
    if truth is not None:  # the generator's own anomalies are not normal rows: left out here
        test = test[~truth.loc[test.index].to_numpy()]
    test = test.reset_index(drop=True)
    model, zscore = result.model, result.baseline_models["category_zscore"]
    flagged = float(model.predict(test)["is_anomaly"].mean())
    scores: dict[str, dict[str, list[float]]] = {"ours": {"auc": [], "ap": []}, "z": {"auc": [], "ap": []}}
    n_inj = max(1, round(0.02 * len(test)))
    for r in range(repeats):
        rng = np.random.default_rng(seed * 1000 + r)
        idx = rng.choice(len(test), size=n_inj, replace=False)
        injected = test.copy()
        factor = np.ones(len(test))
        factor[idx] = rng.uniform(4.0, 10.0, size=n_inj)
        injected["amount"] = injected["amount"].to_numpy(dtype=float) * factor
        y = factor > 1
        for name, m in (("ours", model), ("z", zscore)):
            s = m.predict(injected)["anomaly_score"].to_numpy(dtype=float)
            scores[name]["auc"].append(roc_auc_score(y, s))
            scores[name]["ap"].append(average_precision_score(y, s))
    mean = {k: {m: float(np.mean(v)) for m, v in d.items()} for k, d in scores.items()}
    note = (
        f"{len(test)} holdout rows, {n_inj} spiked x4-10 per draw, {repeats} draws; the model flags "
        f"{flagged:.1%} of clean holdout rows (review load)"
    )
    rows = [
        [
            "anomaly",
            "ROC-AUC (injected x4-10)",
            _fmt(mean["ours"]["auc"]),
            f"robust z of log abs amount within category {_fmt(mean['z']['auc'])}",
            note,
        ],
        [
            "anomaly",
            "average precision",
            _fmt(mean["ours"]["ap"]),
            f"robust z within category {_fmt(mean['z']['ap'])}",
            "",
        ],
    ]
    return rows, {"ours": mean["ours"]["auc"], "z": mean["z"]["auc"], "flagged": flagged}


def run_ledger(
    name: str,
    rows: list[dict[str, str]],
    labels_dir: Path | None,
    repeats: int,
    seed: int,
    landing: Path | None = None,
) -> tuple[str, dict]:
    from titans_assets.lib.ml import data

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="titans-real-") as tmp:
        if landing is None:
            landing = Path(tmp) / "raw"
            write_seed_csv(rows, landing / "ledger.csv")
        frame = data.frame_from_csvs(landing)
    out: list[list[str]] = []
    summary: dict = {"rows": len(frame)}
    for key, fn in (
        ("category", lambda: bench_category(frame)),
        ("amount", lambda: bench_amount(frame)),
        ("cashflow", lambda: bench_cashflow(frame)),
        ("anomaly", lambda: bench_anomaly(frame, labels_dir, repeats, seed)),
    ):
        part, summary[key] = fn()
        out += part
    d0, d1 = frame["txn_date"].min().date(), frame["txn_date"].max().date()
    n_cat = int(frame["category"].notna().sum())
    lines = [
        f"### {name}",
        "",
        f"{len(frame)} rows ({n_cat} categorised expenses), {d0} .. {d1}; {time.perf_counter() - t0:.0f} s",
        "",
        "| model | metric | ours | baselines (same split) | notes |",
        "|---|---|---|---|---|",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in out]
    summary["seconds"] = time.perf_counter() - t0
    return "\n".join(lines) + "\n", summary


def summary_table(results: dict[str, dict]) -> str:
    lines = [
        "| ledger | rows | category accuracy: ours / LinearSVC | macro-F1: ours / LinearSVC | "
        "amount MAE: ours / best median (coverage) | cash flow MASE: ours / historic mean / snaive(7) | "
        "anomaly ROC-AUC: ours / robust z |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in results.items():
        c, a, f, n = s.get("category", {}), s.get("amount", {}), s.get("cashflow", {}), s.get("anomaly", {})
        cat = f"{_fmt(c.get('ours'))} / {_fmt(c.get('svc'))}" if c else "not trained"
        f1 = f"{_fmt(c.get('ours_f1'))} / {_fmt(c.get('svc_f1'))}" if c else "not trained"
        amt = (
            f"{_fmt(a['ours'], 2)} / {_fmt(a['best'], 2)} ({_fmt(a['coverage'], 2)})" if a else "not trained"
        )
        cf = (
            f"{_fmt(f['ours'])} / {_fmt(f['historic_mean'])} / {_fmt(f['snaive'])}"
            if f
            else "series too short"
        )
        an = f"{_fmt(n.get('ours'))} / {_fmt(n.get('z'))}" if n else "not trained"
        lines.append(f"| {name} | {s['rows']} | {cat} | {f1} | {amt} | {cf} | {an} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--devdata", type=Path, default=ROOT.parent / "shared" / "devdata")
    ap.add_argument("--end-date", default="2025-06-30", help="the generated ledger's last day")
    ap.add_argument("--seed", type=int, default=7, help="the generated ledger's seed, and the injection seed")
    ap.add_argument("--repeats", type=int, default=20, help="anomaly injection draws per ledger")
    ap.add_argument("--only", default="", help="comma-separated substrings of ledger names to run")
    args = ap.parse_args()
    ledgers_dir = args.devdata / "ledgers"
    if not ledgers_dir.is_dir():
        print(f"{ledgers_dir} is absent: the real-ledger benchmark needs the dev ledgers; skipped.")
        return 0
    from titans_assets.lib.generator import DEMO_YEARS, generate

    started = time.perf_counter()
    results: dict[str, dict] = {}
    sections: list[str] = []
    wanted = [w for w in args.only.split(",") if w]
    for path in sorted(p for p in ledgers_dir.iterdir() if p.is_file()):
        if wanted and not any(w in path.name for w in wanted):
            continue
        try:
            rows, skipped = convert(path)
        except ValueError as exc:
            print(f"skipped {path.name}: {exc}", file=sys.stderr)
            continue
        text, summary = run_ledger(path.name, rows, None, args.repeats, args.seed)
        if skipped:
            text = text.replace(
                "\n\n|",
                f"\n\nLeft out by the converter: {', '.join(f'{n} {k}' for k, n in skipped.items())}.\n\n|",
                1,
            )
        sections.append(text)
        results[path.name] = summary
        print(text, file=sys.stderr)
    end = dt.date.fromisoformat(args.end_date)
    gen_name = f"generated (demo accounts, {DEMO_YEARS:g} years to {end}, seed {args.seed})"
    if not wanted or any(w in "generated" for w in wanted):
        with tempfile.TemporaryDirectory(prefix="titans-real-gen-") as tmp:
            generate(
                Path(tmp) / "raw",
                years=DEMO_YEARS,
                seed=args.seed,
                end_date=end,
                labels_dir=Path(tmp) / "labels",
            )
            text, summary = run_ledger(
                gen_name, [], Path(tmp) / "labels", args.repeats, args.seed, landing=Path(tmp) / "raw"
            )
        sections.append(text)
        results[gen_name] = summary
    seconds = time.perf_counter() - started
    print(
        f"{len(results)} ledgers in {seconds:.0f} s; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores; {dt.date.today()}; `.venv/bin/python benchmarks/real_ledgers.py "
        f"--end-date {args.end_date} --seed {args.seed} --repeats {args.repeats}`\n"
    )
    print(summary_table(results))
    for s in sections:
        print(s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
