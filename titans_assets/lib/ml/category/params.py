"""The category model's training parameters: their defaults and the candidate regimes (overrides of the
defaults) that training chooses between on small data."""

from __future__ import annotations

from typing import Any

MIN_ROWS = 30  # categorised rows in all (train + test)

DEFAULT_PARAMS: dict[str, Any] = {
    "test_fraction": 0.2,
    "max_train_rows": 150_000,
    "calibration_fraction": 0.15,
    "min_calibration_rows": 300,
    "calibration_folds": 5,
    "top_k": 3,
    "classifier": "sgd",  # sgd (averaged SGD, log loss) | svm (LinearSVC, squared hinge)
    "svm_c": 1.0,  # LinearSVC's C (scikit-learn's default)
    "char_analyzer": "char_wb",  # char_wb (n-grams within words) | char (across word boundaries)
    "char_ngram": (2, 5),
    "word_ngram": (1, 2),
    "min_df": 2,  # rows a term must appear in
    "amount_bins": 16,
    "numeric_weight": 0.3,  # scale of the standardised numeric block beside the l2-normalised text blocks
    "alpha": 1e-5,
    "epochs": 3,  # at least; small data gets more, up to `max_epochs`, to reach `target_updates`
    "target_updates": 200_000,  # sample updates per class (rows x epochs)
    "max_epochs": 1000,
    "refit": True,  # refit on the whole training period after calibrating on its last slice
    "request_fraction": 0.2,  # extra request-shaped copies (no reference / no payment method)
    "rare_class_rows": 3,
    "n_jobs": 2,  # one-vs-rest problems fitted in parallel threads
    "seed": 0,
    # Regime selection (small data): with at most `select_max_rows` training rows, each of `regimes`
    # is fitted at every origin of `select_origins` (fractions of the training rows, cut on a day) and
    # scored on the rows up to the next origin; the most accurate is refitted on the whole training
    # period, its temperature fitted on those held-out predictions.
    "select_max_rows": 20_000,
    "select_origins": (0.7, 0.8, 0.9),
    # the latest origins whose scored rows reach this many are enough (a larger ledger needs fewer fits)
    "select_min_scored": 400,
    "regimes": ("svm_text", "sgd_text"),  # also "sgd" (the defaults); it won no origin trial below 20k rows
}

# Candidate regimes: overrides of DEFAULT_PARAMS, simplest first (the first wins a tie).
REGIMES: dict[str, dict[str, Any]] = {
    # text + payment method + amount bins (no calendar columns) into LinearSVC: the baseline
    # features, every n-gram kept
    "svm_text": {
        "classifier": "svm",
        "char_analyzer": "char",
        "char_ngram": (2, 4),
        "min_df": 1,
        "numeric_weight": 0.0,
    },
    # the same blocks (word-bounded char 2-5 grams) into averaged SGD with log loss
    "sgd_text": {"min_df": 1, "numeric_weight": 0.0},
    # everything (calendar and amount shape too), rare n-grams cut: the large-data model
    "sgd": {},
}
