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
    ModelSpec("category", "titans_assets.lib.ml.category", "transactions", (
        {"amount": -54.99, "description": "Adobe Creative Cloud", "payment_method": "credit_card",
         "txn_date": "2024-03-01", "reference": "Adobe"},)),
    ModelSpec("amount", "titans_assets.lib.ml.amount", "transactions", (
        {"category": "software", "txn_date": "2024-03-01", "payment_method": "credit_card",
         "description": "Adobe Creative Cloud"},)),
    ModelSpec("anomaly", "titans_assets.lib.ml.anomaly", "transactions", (
        {"amount": -54.99, "category": "software", "description": "Adobe Creative Cloud", "txn_date": "2024-03-01",
         "payment_method": "credit_card", "reference": "Adobe"},)),
    ModelSpec("cashflow", "titans_assets.lib.ml.cashflow", "daily", ({"horizon_days": 30},)),
)
BY_KEY = {s.key: s for s in SPECS}


def train_model(spec: ModelSpec, db, settings):
    """Read the spec's feature table and train: the whole of a training asset but the logging."""
    from titans_assets.lib.ml import data

    if spec.source == "daily":
        return spec.module.train(data.load_daily_series(db))
    frame = data.load_transactions(db)
    if spec.key == "anomaly":
        return spec.module.train(frame, labels=data.anomaly_labels(frame, settings.labels_dir))
    return spec.module.train(frame)
