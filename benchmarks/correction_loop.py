"""The correction loop on the real dev ledgers with their labels hidden: does correcting what the
review queue (lib/categories/review.py) ranks first teach the category model faster than correcting random rows?

    .venv/bin/python benchmarks/correction_loop.py [--devdata ../shared/devdata] [--rounds 10]
        [--per-round 20] [--random-seeds 0,1,2] [--only NAME,...]

Each ledger is read as benchmarks/real_ledgers.py reads it (benchmarks/ledger_files.py). The rows
with a label (categorised expenses) are the rows a user could correct; every label is hidden. Then,
per round:

1. the predictor of the labels so far categorises every row nobody corrected: the category model
   (lib/ml/category.train as the training asset calls it: its own chronological holdout and
   calibration) once the corrections let it train, else the description/merchant lookup of the
   corrected rows (category.LookupBaseline; the model's own baseline), else nothing (confidence 0).
   The asset lets each training choose between the svm_text and sgd_text regimes; here only svm_text
   by default (`--regimes`): at 60-200 labels the two scored the same in a spot check (hackclub, 200
   random labels: accuracy 0.762 each) and sgd_text costs ~4x the CPU;
2. a simulated user corrects 20 rows: the 20 the review queue ranks first (review.rank over the
   uncorrected rows, with the predictor's confidence; merchants with a corrected row are not new), or
   20 uniformly random uncorrected rows (one curve per seed of `--random-seeds`);
3. the predictor is refitted on every correction so far and scored.

Printed per round: accuracy on the untouched rows (the issue's measure) and on the whole ledger
(corrected rows count as right: what the user's books hold afterwards). The untouched-row accuracy of
the queue is measured on a harder remainder than random's (the queue takes the doubtful rows away
from it), so the whole-ledger column is printed beside it. Reference: the model with every label,
scored on its own chronological holdout (as real_ledgers.py reports it).

The rows of these ledgers are never printed: only counts and accuracies. Without the devdata folder
the script says so and exits 0.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ledger_files import convert, frame_of, ledger_paths  # noqa: E402

from titans_assets.lib.categories import review  # noqa: E402


@dataclass
class Curve:
    name: str
    untouched: list[float] = field(default_factory=list)  # accuracy on rows never corrected, per round
    ledger: list[float] = field(default_factory=list)  # accuracy over every labelled row (corrections right)
    predictor: list[str] = field(default_factory=list)  # what categorised the rows that round


class Predictor:
    """What categorises the uncorrected rows, fitted on the corrections so far."""

    def __init__(
        self, frame: pd.DataFrame, corrected: np.ndarray, truth: np.ndarray, regimes: tuple[str, ...]
    ):
        from titans_assets.lib.ml import category as C
        from titans_assets.lib.ml import features as F
        from titans_assets.lib.ml.common import TrainingDataError

        labels = np.where(corrected, truth, None)
        data = frame.assign(category=labels, category_raw=labels)
        self.kind, self.model = "none", None
        if corrected.sum() == 0:
            return
        try:
            self.model, self.kind = C.train(data, regimes=regimes).model, "model"
        except TrainingDataError:
            prepared = C.labelled_rows(data, F.Vocabulary.from_seeds())
            if len(prepared):
                self.model, self.kind = C.LookupBaseline(F.Vocabulary.from_seeds(), prepared), "lookup"

    def predict(self, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(category, confidence) of each row; (None, 0) without a predictor."""
        if self.model is None or rows.empty:
            return np.full(len(rows), None, dtype=object), np.zeros(len(rows))
        proba = self.model.predict_proba(rows)
        best = proba.argmax(axis=1)
        return self.model.classes_[best], proba[np.arange(len(rows)), best]


def _accuracy(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean(pred == truth)) if len(truth) else float("nan")


def run_curve(
    name: str,
    frame: pd.DataFrame,
    truth: np.ndarray,
    rounds: int,
    per_round: int,
    chooser,
    regimes: tuple[str, ...],
) -> Curve:
    """One simulated user over `rounds`: `chooser(uncorrected rows, their confidence, corrected mask)`
    returns the positions (into `frame`) of the rows to correct this round."""
    curve = Curve(name)
    corrected = np.zeros(len(frame), dtype=bool)
    predictor = Predictor(frame, corrected, truth, regimes)
    for _ in range(rounds):
        open_idx = np.flatnonzero(~corrected)
        _, confidence = predictor.predict(frame.iloc[open_idx])
        picked = chooser(open_idx, confidence, corrected)[:per_round]
        corrected[picked] = True
        predictor = Predictor(frame, corrected, truth, regimes)
        rest = np.flatnonzero(~corrected)
        pred, _ = predictor.predict(frame.iloc[rest])
        curve.untouched.append(_accuracy(pred, truth[rest]))
        right = corrected.copy()
        right[rest] = pred == truth[rest]
        curve.ledger.append(float(right.mean()))
        curve.predictor.append(predictor.kind)
    return curve


def queue_chooser(frame: pd.DataFrame, weights: review.ReviewWeights, per_round: int):
    def choose(open_idx: np.ndarray, confidence: np.ndarray, corrected: np.ndarray) -> np.ndarray:
        labelled = review.merchant_key(
            frame["merchant"].iloc[np.flatnonzero(corrected)],
            frame["description"].iloc[np.flatnonzero(corrected)],
        )
        rows = pd.DataFrame(
            {
                "confidence": confidence,
                "amount": frame["amount"].to_numpy()[open_idx],
                "merchant": frame["merchant"].to_numpy(dtype=object)[open_idx],
                "description": frame["description"].to_numpy(dtype=object)[open_idx],
                "pos": open_idx,
            }
        )
        return review.rank(rows, set(labelled), weights, limit=per_round)["pos"].to_numpy()

    return choose


def random_chooser(seed: int, per_round: int):
    rng = np.random.default_rng(seed)

    def choose(open_idx: np.ndarray, confidence: np.ndarray, corrected: np.ndarray) -> np.ndarray:
        return rng.choice(open_idx, size=min(per_round, len(open_idx)), replace=False)

    return choose


def full_label_accuracy(frame: pd.DataFrame) -> float | None:
    from titans_assets.lib.ml import category as C
    from titans_assets.lib.ml.common import TrainingDataError

    try:
        return float(C.train(frame).metrics["accuracy"])
    except TrainingDataError:
        return None


def _f(x: float | None) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.3f}"


def run_ledger(name: str, frame: pd.DataFrame, args, weights: review.ReviewWeights) -> tuple[str, dict]:
    t0 = time.perf_counter()
    labelled = frame[frame["category"].notna()].reset_index(drop=True)
    truth = labelled["category"].to_numpy(dtype=object)
    hidden = labelled.assign(category=None, category_raw=None)
    full = full_label_accuracy(frame)
    queue = run_curve(
        "queue",
        hidden,
        truth,
        args.rounds,
        args.per_round,
        queue_chooser(hidden, weights, args.per_round),
        args.regimes,
    )
    randoms = [
        run_curve(
            f"random (seed {s})",
            hidden,
            truth,
            args.rounds,
            args.per_round,
            random_chooser(s, args.per_round),
            args.regimes,
        )
        for s in args.random_seeds
    ]
    r_untouched = np.array([c.untouched for c in randoms])
    r_ledger = np.array([c.ledger for c in randoms])
    seconds = time.perf_counter() - t0
    above = [q > r.max() for q, r in zip(queue.untouched, r_untouched.T)]
    reached = next((i + 1 for i, a in enumerate(queue.untouched) if a >= 0.85), None)
    lines = [
        f"### {name}",
        "",
        f"{len(labelled)} labelled expense rows, {labelled['category'].nunique()} categories, "
        f"{labelled['merchant'].nunique()} merchants; full-label model accuracy (its chronological "
        f"holdout) {_f(full)}; {seconds:.0f} s",
        "",
        "| round | corrected | queue: untouched | random: untouched (mean, min-max of "
        f"{len(randoms)} seeds) | queue: whole ledger | random: whole ledger (mean) | predictor (queue) |",
        "|---|---|---|---|---|---|---|",
    ]
    for i in range(args.rounds):
        lines.append(
            f"| {i + 1} | {(i + 1) * args.per_round} | {_f(queue.untouched[i])} | "
            f"{_f(r_untouched[:, i].mean())} ({_f(r_untouched[:, i].min())}-{_f(r_untouched[:, i].max())}) | "
            f"{_f(queue.ledger[i])} | {_f(r_ledger[:, i].mean())} | {queue.predictor[i]} |"
        )
    lines += [
        "",
        f"Queue above every random seed at {sum(above)}/{args.rounds} rounds (untouched rows); "
        f"above the random mean on the whole ledger at "
        f"{sum(q > r for q, r in zip(queue.ledger, r_ledger.mean(axis=0)))}/{args.rounds}; "
        f"untouched accuracy >= 0.85 {'from round ' + str(reached) if reached else 'not reached'}.",
    ]
    summary = {
        "rows": len(labelled),
        "full": full,
        "queue_last": queue.untouched[-1],
        "random_last": float(r_untouched[:, -1].mean()),
        "above": sum(above),
        "reached": reached,
        "queue_ledger_last": queue.ledger[-1],
        "random_ledger_last": float(r_ledger[:, -1].mean()),
        "seconds": seconds,
    }
    return "\n".join(lines) + "\n", summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--devdata", type=Path, default=ROOT.parent / "shared" / "devdata")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--per-round", type=int, default=20)
    ap.add_argument("--random-seeds", default="0,1,2", help="comma-separated seeds of the random user")
    ap.add_argument("--only", default="", help="comma-separated substrings of ledger names to run")
    ap.add_argument("--new-merchant-boost", type=float, default=review.DEFAULT_WEIGHTS.new_merchant_boost)
    ap.add_argument("--merchant-rows-weight", type=float, default=review.DEFAULT_WEIGHTS.merchant_rows_weight)
    ap.add_argument(
        "--regimes",
        default="svm_text",
        help="the category model's regimes tried each round (category.REGIMES; the asset tries "
        "svm_text,sgd_text: 4x the time, see docs/models.md)",
    )
    args = ap.parse_args()
    args.regimes = tuple(r for r in args.regimes.split(",") if r)
    args.random_seeds = [int(s) for s in args.random_seeds.split(",") if s.strip()]
    weights = review.ReviewWeights(
        new_merchant_boost=args.new_merchant_boost, merchant_rows_weight=args.merchant_rows_weight
    )
    paths = ledger_paths(args.devdata, args.only)
    if not paths:
        print(
            f"{args.devdata / 'ledgers'} is absent or empty: the correction loop needs the dev ledgers; skipped."
        )
        return 0
    logging.disable(logging.INFO)
    warnings.filterwarnings("ignore")
    started = time.perf_counter()
    sections, results = [], {}
    for path in paths:
        try:
            rows, _ = convert(path)
        except ValueError as exc:
            print(f"skipped {path.name}: {exc}", file=sys.stderr)
            continue
        text, results[path.name] = run_ledger(path.name, frame_of(rows), args, weights)
        sections.append(text)
        print(text, file=sys.stderr, flush=True)
    seeds = ",".join(map(str, args.random_seeds))
    print(
        f"{len(results)} ledgers in {time.perf_counter() - started:.0f} s; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; {dt.date.today()}; "
        f"`.venv/bin/python benchmarks/correction_loop.py --rounds {args.rounds} --per-round {args.per_round} "
        f"--random-seeds {seeds} --regimes {','.join(args.regimes)}` (weights: new merchant "
        f"x{weights.new_merchant_boost:g}, merchant rows weight {weights.merchant_rows_weight:g}); "
        f"CPU {time.process_time():.0f} s\n"
    )
    print(
        f"| ledger | labelled rows | full-label accuracy | after {args.rounds} rounds, untouched: queue / random mean | "
        "whole ledger: queue / random mean | queue above every random seed | queue >= 0.85 from round |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, s in results.items():
        print(
            f"| {name} | {s['rows']} | {_f(s['full'])} | {_f(s['queue_last'])} / {_f(s['random_last'])} | "
            f"{_f(s['queue_ledger_last'])} / {_f(s['random_ledger_last'])} | {s['above']}/{args.rounds} | "
            f"{s['reached'] or 'not reached'} |"
        )
    print()
    for s in sections:
        print(s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
