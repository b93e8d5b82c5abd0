"""How many labels does the category model need before training it is worth it? (the cold-start gate,
lib/ml/cold_start.py: TITANS_CATEGORY_MIN_LABELS / TITANS_CATEGORY_MIN_CATEGORIES)

    .venv/bin/python benchmarks/cold_start_threshold.py [--devdata ../shared/devdata] [--seeds 5]
                                                        [--sizes 20,30,50,75,100,150]

A cold-start ledger has no labels; a person labels transactions one by one. Per ledger (the real dev
ledgers of ../shared/devdata/ledgers, converted as benchmarks/real_ledgers.py converts them, and two
generated ledgers), for each label count N and seed: N expense rows drawn at random keep their label,
every other label is hidden; `category.train` runs as the asset runs it (its own time split of the N
labels) and the fitted model and its best baseline (the one promotion would serve: majority or
description lookup, fitted on the same labels) are scored on every row whose label was hidden. The
table gives, per N, how often training was possible at all, the mean accuracy of model and best
baseline on the hidden rows, and how often the model beat that baseline (the promotion gate's
question, asked on far more rows than its own small holdout).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ledger_files import convert, frame_of, ledger_paths  # noqa: E402


def generated(seed: int, rows: int) -> pd.DataFrame:
    from titans_assets.lib.generator import generate
    from titans_assets.lib.ml import data

    with tempfile.TemporaryDirectory(prefix="titans-cold-") as tmp:
        generate(
            Path(tmp) / "raw",
            rows=rows,
            seed=seed,
            end_date=dt.date(2026, 6, 30),
            labels_dir=Path(tmp) / "labels",
        )
        return data.frame_from_csvs(Path(tmp) / "raw")


def accuracy(model, rows: pd.DataFrame, truth: np.ndarray) -> float:
    from titans_assets.lib.ml import features as F

    # compare in the normalized spelling: the model answers in the user's spelling
    predicted = F.normalize_label(model.predict(rows)["prediction"].astype(object)).to_numpy(dtype=object)
    return float(np.mean(predicted == truth))


def trial(frame: pd.DataFrame, n: int, seed: int) -> dict | None:
    """One cold start: n random labels kept; None when the ledger has fewer labelled expense rows."""
    from titans_assets.lib.ml import category
    from titans_assets.lib.ml import features as F
    from titans_assets.lib.ml.common import TrainingDataError

    labelled = category.labelled_rows(frame, F.Vocabulary.from_seeds())
    if len(labelled) < n + 50:
        return None
    rng = np.random.default_rng(seed)
    keep = rng.choice(labelled.index.to_numpy(), size=n, replace=False)
    hidden = labelled.index.difference(keep)
    cold = frame.copy()
    cold.loc[~cold.index.isin(keep), "category"] = None
    if "category_raw" in cold:
        cold.loc[~cold.index.isin(keep), "category_raw"] = None
    categories = int(labelled.loc[keep, "category"].nunique())
    try:
        result = category.train(cold)
    except TrainingDataError:
        return {"trained": False, "categories": categories}
    rows, truth = frame.loc[hidden], labelled.loc[hidden, "category"].to_numpy(dtype=object)
    best, best_value = result.best_baseline(category.PRIMARY_METRIC, category.HIGHER_IS_BETTER)
    model_acc = accuracy(result.model, rows, truth)
    base_acc = accuracy(result.baseline_models[best], rows, truth)
    promoted = result.metrics[category.PRIMARY_METRIC] > best_value  # the gate, on the training's own holdout
    return {
        "trained": True,
        "categories": categories,
        "model": model_acc,
        "baseline": base_acc,
        "beats": model_acc > base_acc,
        "served": model_acc if promoted else base_acc,
        "right": promoted == (model_acc > base_acc),
        "holdout": int(result.data_window["test_rows"]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devdata", type=Path, default=ROOT.parent / "shared" / "devdata")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--sizes", default="20,30,50,75,100,150")
    parser.add_argument("--generated-rows", type=int, default=1500)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    sizes = [int(s) for s in args.sizes.split(",")]

    ledgers: dict[str, pd.DataFrame] = {}
    for path in ledger_paths(args.devdata):
        rows, _ = convert(path)
        if rows:
            ledgers[path.name] = frame_of(rows)
    for seed in (7, 21):
        ledgers[f"generated seed {seed}"] = generated(seed, args.generated_rows)

    print(
        "| ledger | labels N | trained | categories in N (mean) | model acc. on hidden | best baseline acc. "
        "| model beats baseline |"
    )
    print("|---|---|---|---|---|---|---|")
    overall: dict[int, list[dict]] = {n: [] for n in sizes}
    for name, frame in ledgers.items():
        for n in sizes:
            results = [r for r in (trial(frame, n, s) for s in range(args.seeds)) if r is not None]
            if not results:
                continue
            overall[n] += results
            done = [r for r in results if r["trained"]]
            cats = np.mean([r["categories"] for r in results])
            if done:
                print(
                    f"| {name} | {n} | {len(done)}/{len(results)} | {cats:.1f} | "
                    f"{np.mean([r['model'] for r in done]):.3f} | {np.mean([r['baseline'] for r in done]):.3f} | "
                    f"{sum(r['beats'] for r in done)}/{len(done)} |"
                )
            else:
                print(f"| {name} | {n} | 0/{len(results)} | {cats:.1f} | - | - | - |")
        sys.stdout.flush()
    print(
        "\n| labels N | trials | trained | holdout rows (mean) | model beats best baseline on hidden rows "
        "| promotion decided right | mean acc.: model | best baseline | served |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for n, results in overall.items():
        done = [r for r in results if r["trained"]]
        if not results:
            continue
        if not done:
            print(f"| {n} | {len(results)} | 0 | - | - | - | - | - | - |")
            continue
        print(
            f"| {n} | {len(results)} | {len(done)} | {np.mean([r['holdout'] for r in done]):.1f} | "
            f"{sum(r['beats'] for r in done)}/{len(done)} | {sum(r['right'] for r in done)}/{len(done)} | "
            f"{np.mean([r['model'] for r in done]):.3f} | {np.mean([r['baseline'] for r in done]):.3f} | "
            f"{np.mean([r['served'] for r in done]):.3f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
