"""The demo's data over many (end date, seed) pairs, trained the way the assets train: does every model
beat its strongest baseline whatever the calendar and the draw? No Dagster, no database (the rows are
parsed by the input contract and prepared like the warehouse's); used by tests/test_model_sweep.py
(bounded) and benchmarks/model_sweep.py (wide)."""

from __future__ import annotations

import datetime as dt
import tempfile
from dataclasses import dataclass
from pathlib import Path

from titans_assets.lib.generator import DEMO_YEARS, generate
from titans_assets.lib.ml import catalog, data
from titans_assets.lib.ml.promotion import decide


@dataclass(frozen=True)
class Outcome:
    model: str
    end_date: str
    seed: int
    metric: str
    value: float
    best_baseline: str
    best_baseline_value: float
    beats_baseline: bool
    served: str  # what a first training would serve: "model" or "baseline:<name>"


def run_case(end_date: dt.date, seed: int, models: tuple[str, ...] = tuple(catalog.BY_KEY)) -> list[Outcome]:
    """Generate the demo's ledgers (DEMO_YEARS, default accounts) ending `end_date` with `seed`, train each
    of `models` as the assets do and decide as a first training would (no champion yet)."""
    with tempfile.TemporaryDirectory(prefix="titans-sweep-") as tmp:
        root = Path(tmp)
        generate(root / "raw", years=DEMO_YEARS, seed=seed, end_date=end_date, labels_dir=root / "labels")
        frame = data.frame_from_csvs(root / "raw")
        out = []
        for key in models:
            spec = catalog.BY_KEY[key]
            result = catalog.train_on(spec, transactions=frame, labels_dir=root / "labels")
            d = decide(spec.primary_metric, spec.higher_is_better, result.metrics, result.baselines)
            out.append(
                Outcome(
                    key,
                    end_date.isoformat(),
                    seed,
                    spec.primary_metric,
                    d.challenger,
                    d.best_baseline,
                    d.best_baseline_value,
                    d.beats_baseline,
                    d.served,
                )
            )
        return out
