"""One fit of the category model on labelled rows: the encoder, then a one-vs-rest linear classifier
(averaged SGD or LinearSVC) whose weights are copied out into plain arrays."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import SGDClassifier
from sklearn.svm import LinearSVC

from titans_assets.lib.ml.category.encoder import _Encoder
from titans_assets.lib.ml.common import TrainingDataError


def _epochs(n_rows: int, params: dict[str, Any]) -> int:
    wanted = math.ceil(int(params["target_updates"]) / max(n_rows, 1))
    return max(int(params["epochs"]), min(int(params["max_epochs"]), wanted))


def _fit_linear(
    X: sp.csr_matrix, y: np.ndarray, params: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(classes, W (features x classes), b): OvR logistic regression by averaged SGD, or OvR LinearSVC
    (`classifier`: svm; its decision values are the logits, calibrated by the temperature like SGD's)."""
    classes = np.unique(y)
    if len(classes) < 2:
        raise TrainingDataError(f"one category ({classes[0]!r}) in the training rows; need at least two")
    if params["classifier"] == "svm":
        clf = LinearSVC(C=float(params["svm_c"]), random_state=int(params["seed"]))
        with (
            warnings.catch_warnings()
        ):  # liblinear may stop at its iteration limit: what the baseline does too
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X, y)
    elif params["classifier"] == "sgd":
        clf = SGDClassifier(
            loss="log_loss",
            alpha=float(params["alpha"]),
            max_iter=_epochs(X.shape[0], params),
            tol=None,
            average=True,
            n_jobs=params["n_jobs"],
            random_state=int(params["seed"]),
        )
        clf.fit(X, y)
    else:
        raise ValueError(f"unknown classifier {params['classifier']!r} (sgd | svm)")
    coef, intercept = clf.coef_, clf.intercept_
    if len(classes) == 2:  # binary: one logit s for the second class == softmax([0, s])
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.concatenate([[0.0], intercept])
    return (
        clf.classes_.astype(object),
        np.ascontiguousarray(coef.T, dtype=np.float32),
        intercept.astype(np.float64),
    )


def _request_copies(prepared: pd.DataFrame, fraction: float, seed: int) -> pd.DataFrame:
    """`prepared` plus request-shaped copies of a random `fraction` of its rows: half without the
    reference, half without the reference and the payment method (what a bank line sent to the service
    often lacks), so the model has seen such rows instead of extrapolating to them."""
    n = int(round(len(prepared) * fraction))
    if n == 0:
        return prepared
    rng = np.random.default_rng(seed)
    copies = prepared.iloc[rng.choice(len(prepared), size=n, replace=False)].copy()
    copies["reference"] = ""
    copies.iloc[: n // 2, copies.columns.get_loc("payment_method")] = None
    return pd.concat([prepared, copies])


def _fit(prepared: pd.DataFrame, p: dict[str, Any]) -> tuple[_Encoder, np.ndarray, np.ndarray, np.ndarray]:
    """Encoder + linear weights on prepared labelled rows (plus their request-shaped copies)."""
    prepared = _request_copies(prepared, float(p["request_fraction"]), int(p["seed"]))
    encoder = _Encoder(p)
    X = encoder.fit_transform(prepared)
    classes, W, b = _fit_linear(X, prepared["category"].to_numpy(dtype=object), p)
    return encoder, classes, W, b


def _logits_and_target(parts, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Logits of labelled `rows` under fitted `parts`, and the true class index (-1: a class it never saw)."""
    encoder, classes, W, b = parts
    logits = np.asarray(encoder.transform(rows) @ W, dtype=np.float64) + b
    index = {c: i for i, c in enumerate(classes)}
    return logits, np.array([index.get(c, -1) for c in rows["category"]], dtype=int)
