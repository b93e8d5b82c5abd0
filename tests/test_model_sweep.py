"""A bounded sweep of the demo's data (20 pairs of end date and seed, trained as the assets train, at the
library level): every model gets a champion on every pair, and the trained model is what serves, i.e.
it beats its strongest baseline, on (nearly) all of them. The wide sweep (60 end dates x 3 seeds) is
benchmarks/model_sweep.py, its result in docs/models.md."""

from __future__ import annotations

import datetime as dt
import os
from concurrent.futures import ProcessPoolExecutor

import pytest

from titans_assets.lib.ml.sweep import run_case

END_DATES = (dt.date(2026, 1, 15), dt.date(2026, 4, 2), dt.date(2026, 7, 19), dt.date(2026, 11, 30))
SEEDS = (1, 2, 3, 4, 5)
# Every pair gets a champion for every model (the model, or the baseline it lost to). The model itself
# wins on (nearly) all: the cash-flow model on 21/21 of these pairs and 22/24 held-out ones (a 28-day
# mean forecasts best on the others); the category model loses one pair by a macro-F1 of 0.0002 to the
# description lookup (2026-11-30, seed 3: 0.8147 vs 0.8149). Such a pair is an outcome (the baseline
# serves), not a defect; losing more than these is.
MIN_WINS = {"category": 19, "amount": 20, "anomaly": 20, "cashflow": 18}


@pytest.fixture(scope="module")
def outcomes():
    cases = [(end, seed) for end in END_DATES for seed in SEEDS]
    with ProcessPoolExecutor(max_workers=max(1, min(2, os.cpu_count() or 1))) as pool:
        return [o for part in pool.map(run_case, *zip(*cases)) for o in part]


def test_the_sweep_covers_twenty_pairs_and_every_model(outcomes):
    assert len({(o.end_date, o.seed) for o in outcomes}) == 20
    assert {o.model for o in outcomes} == set(MIN_WINS)


@pytest.mark.parametrize("model", list(MIN_WINS))
def test_the_model_beats_its_best_baseline_on_the_demo_data_whatever_the_day_and_seed(outcomes, model):
    mine = [o for o in outcomes if o.model == model]
    wins = [o for o in mine if o.beats_baseline]
    assert len(wins) >= MIN_WINS[model], [
        (o.end_date, o.seed, o.value, o.best_baseline, o.best_baseline_value)
        for o in mine
        if not o.beats_baseline
    ]
    # losing serves the baseline: every pair has a champion that is never worse than that baseline
    assert all(o.served == ("model" if o.beats_baseline else f"baseline:{o.best_baseline}") for o in mine)
