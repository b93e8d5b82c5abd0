"""The four models: which module trains each, what data it reads, and a request-shaped example
(the logged signature and the serving contract start from it)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

import pandas as pd


@dataclass(frozen=True)
class ModelSpec:
    key: str  # category | amount | anomaly | cashflow
    module_name: str
    source: str  # "transactions" (features.ml_transaction_features) | "daily" (features.ml_daily_cashflow)
    example: tuple[dict, ...]  # request rows

    @property
    def module(self) -> ModuleType:
        return importlib.import_module(self.module_name)

    @property
    def name(self) -> str:
        return self.module.NAME

    @property
    def primary_metric(self) -> str:
        return self.module.PRIMARY_METRIC

    @property
    def higher_is_better(self) -> bool:
        return self.module.HIGHER_IS_BETTER

    def example_frame(self) -> pd.DataFrame:
        return pd.DataFrame(list(self.example))


SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(
        "category",
        "titans_assets.lib.ml.category",
        "transactions",
        (
            {
                "amount": -54.99,
                "description": "Adobe Creative Cloud",
                "payment_method": "credit_card",
                "txn_date": "2024-03-01",
                "reference": "Adobe",
            },
        ),
    ),
    ModelSpec(
        "amount",
        "titans_assets.lib.ml.amount",
        "transactions",
        (
            {
                "category": "software",
                "txn_date": "2024-03-01",
                "payment_method": "credit_card",
                "description": "Adobe Creative Cloud",
            },
        ),
    ),
    ModelSpec(
        "anomaly",
        "titans_assets.lib.ml.anomaly",
        "transactions",
        (
            {
                "amount": -54.99,
                "category": "software",
                "description": "Adobe Creative Cloud",
                "txn_date": "2024-03-01",
                "payment_method": "credit_card",
                "reference": "Adobe",
            },
        ),
    ),
    ModelSpec("cashflow", "titans_assets.lib.ml.cashflow", "daily", ({"horizon_days": 30},)),
)
BY_KEY = {s.key: s for s in SPECS}


def train_model(spec: ModelSpec, db, settings):
    """Read the spec's feature table and train: the whole of a training asset but the logging."""
    from titans_assets.lib.ml import data

    if spec.source == "daily":
        return train_on(spec, daily=data.load_daily_series(db))
    transactions = data.load_transactions(db)
    if spec.key == "anomaly":  # the flags the user marked "expected" (the dashboard's anomaly page)
        from titans_assets.lib.dashboard import feedback

        return train_on(
            spec,
            transactions=transactions,
            labels_dir=settings.labels_dir,
            expected=transactions["transaction_id"].isin(feedback.expected_ids(db)).to_numpy(),
            expected_after=settings.anomaly_expected_after,
        )
    return train_on(spec, transactions=transactions, labels_dir=settings.labels_dir)


def train_on(
    spec: ModelSpec,
    *,
    transactions=None,
    daily=None,
    labels_dir=None,
    expected=None,
    expected_after: int | None = None,
):
    """Train `spec` the way the assets do, on warehouse-shaped rows (or the daily series for cash
    flow; derived from `transactions` when not given): what train_model and the model sweeps share.
    `expected`: the anomaly model's rows marked expected (booleans aligned with `transactions`)."""
    from titans_assets.lib.ml import data

    if spec.source == "daily":
        return spec.module.train(daily if daily is not None else data.daily_series(transactions))
    if spec.key == "anomaly":
        labels = data.anomaly_labels(transactions, labels_dir) if labels_dir is not None else None
        extra = {} if expected_after is None else {"expected_after": expected_after}
        return spec.module.train(transactions, labels=labels, expected=expected, **extra)
    return spec.module.train(transactions)
