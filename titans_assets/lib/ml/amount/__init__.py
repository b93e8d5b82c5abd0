"""The expense amount model: how much will an expense in this category, on this date, probably cost?

A booster on target encodings with split-conformal intervals. The modules, one job each: rows.py (the
rows read), encoder.py (features), fit.py (training), conformal.py (intervals), model.py (the fitted
model), request.py (the one-row path), reasons.py (factors), score.py (metrics), baselines.py,
figures.py. This module holds the contract constants and re-exports what the rest of the code uses."""

from titans_assets.lib.ml.amount.baselines import DescriptionMedianBaseline, MedianBaseline
from titans_assets.lib.ml.amount.encoder import _State
from titans_assets.lib.ml.amount.fit import DEFAULT_PARAMS, train
from titans_assets.lib.ml.amount.model import AmountModel
from titans_assets.lib.ml.amount.rows import expense_rows
from titans_assets.lib.ml.amount.score import score

NAME = "titans_amount"
PRIMARY_METRIC = "mae"
HIGHER_IS_BETTER = False

__all__ = [
    "DEFAULT_PARAMS",
    "HIGHER_IS_BETTER",
    "NAME",
    "PRIMARY_METRIC",
    "AmountModel",
    "DescriptionMedianBaseline",
    "MedianBaseline",
    "expense_rows",
    "score",
    "train",
]

# Pickles name these classes as attributes of this package (as when it was one module): keep that name.
for _cls in (AmountModel, _State, MedianBaseline, DescriptionMedianBaseline):
    _cls.__module__ = __name__
