"""The transaction anomaly model: a score in [0, 1] per transaction, a flag, a risk level and reasons.

The modules, one job each: canon.py (what every component reads of a row), stats.py and lookup.py
(group statistics, in-frame counts, fitted-table lookups), evidence.py (the batch path: evidence per
component), request.py (the one-row path), forest.py (the isolation trees for a few rows), model.py
(the fitted model), reasons.py, estimate.py (fitting the statistics and the forest), fit.py
(training and the threshold), inject.py (synthetic anomalies), score.py (metrics), baselines.py,
figures.py and constants.py. This module holds the contract constants and re-exports what the rest
of the code uses."""

from titans_assets.lib.ml.anomaly.baselines import BASELINES, RobustBaseline
from titans_assets.lib.ml.anomaly.constants import COMPONENTS, DEFAULT_WEIGHTS, INJECTED_KINDS
from titans_assets.lib.ml.anomaly.fit import EXPECTED_AFTER, choose_threshold, expected_suppressions, train
from titans_assets.lib.ml.anomaly.inject import inject_anomalies
from titans_assets.lib.ml.anomaly.model import AnomalyModel
from titans_assets.lib.ml.anomaly.score import score

NAME = "titans_anomaly"
PRIMARY_METRIC = "average_precision"
HIGHER_IS_BETTER = True

__all__ = [
    "BASELINES",
    "COMPONENTS",
    "DEFAULT_WEIGHTS",
    "EXPECTED_AFTER",
    "HIGHER_IS_BETTER",
    "INJECTED_KINDS",
    "NAME",
    "PRIMARY_METRIC",
    "AnomalyModel",
    "RobustBaseline",
    "choose_threshold",
    "expected_suppressions",
    "inject_anomalies",
    "score",
    "train",
]

# Pickles name these classes as attributes of this package (as when it was one module): keep that name.
for _cls in (AnomalyModel, RobustBaseline):
    _cls.__module__ = __name__
