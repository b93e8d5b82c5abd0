"""Transaction category model: which expense category does this bank line belong to?

TF-IDF of the text, payment method and amount into a calibrated one-vs-rest linear classifier. The
modules, one job each: params.py (defaults and regimes), rows.py (the labelled rows), encoder.py
(features), classifier.py (one fit), calibrate.py (regime and temperature), fit.py (training),
model.py (the fitted model), request.py (the one-row path), baselines.py, score.py (metrics),
figures.py. This module holds the contract constants and re-exports what the rest of the code uses."""

from titans_assets.lib.ml.category.baselines import LookupBaseline, MajorityBaseline
from titans_assets.lib.ml.category.calibrate import fit_temperature
from titans_assets.lib.ml.category.encoder import _Encoder, _TextBlock
from titans_assets.lib.ml.category.fit import train
from titans_assets.lib.ml.category.model import CategoryModel
from titans_assets.lib.ml.category.params import DEFAULT_PARAMS, MIN_ROWS, REGIMES
from titans_assets.lib.ml.category.rows import display_spellings, labelled_rows
from titans_assets.lib.ml.category.score import expected_calibration_error, score

NAME = "titans_category"
PRIMARY_METRIC = "macro_f1"
HIGHER_IS_BETTER = True

__all__ = [
    "DEFAULT_PARAMS",
    "HIGHER_IS_BETTER",
    "MIN_ROWS",
    "NAME",
    "PRIMARY_METRIC",
    "REGIMES",
    "CategoryModel",
    "LookupBaseline",
    "MajorityBaseline",
    "display_spellings",
    "expected_calibration_error",
    "fit_temperature",
    "labelled_rows",
    "score",
    "train",
]

# Pickles name these classes as attributes of this package (as when it was one module): keep that name.
for _cls in (CategoryModel, MajorityBaseline, LookupBaseline, _Encoder, _TextBlock):
    _cls.__module__ = __name__
