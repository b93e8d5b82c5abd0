"""Cold start of the category model: it trains only once the ledger holds enough category labels.

Until there are `min_labels` (default 30) labels across `min_categories` (default 3) categories,
`ml/category_challenger` does not train (`train_gated`, `LabelGate`) and the service's category
endpoint answers E002 with the reason and the count still needed. TITANS_CATEGORY_MIN_LABELS /
TITANS_CATEGORY_MIN_CATEGORIES change them.

Design notes (where labels come from, how 30 was measured): docs/model-design.md#titans_assetslibmlcold_startpy
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pandas as pd

from titans_assets.lib.settings import SettingsError

DEFAULT_MIN_LABELS = 30
DEFAULT_MIN_CATEGORIES = 3
LABELS_ENV = "TITANS_CATEGORY_MIN_LABELS"
CATEGORIES_ENV = "TITANS_CATEGORY_MIN_CATEGORIES"
HOW_TO_LABEL = (
    "correct transactions with PUT /transactions/{transaction_id}/category or in the dashboard, "
    "then run `titans materialize`"
)


def _whole(env: Mapping[str, str], name: str, default: int) -> int:
    value = (env.get(name) or "").strip()
    if not value:
        return default
    if not value.isdigit():
        raise SettingsError(f"E003 invalid input: {name}={value!r} is not a whole number >= 0")
    return int(value)


@dataclass(frozen=True)
class LabelGate:
    """How many labels, across how many categories, the category model needs before it trains."""

    min_labels: int = DEFAULT_MIN_LABELS
    min_categories: int = DEFAULT_MIN_CATEGORIES

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LabelGate:
        env = os.environ if environ is None else environ
        return cls(
            _whole(env, LABELS_ENV, DEFAULT_MIN_LABELS), _whole(env, CATEGORIES_ENV, DEFAULT_MIN_CATEGORIES)
        )

    def status(self, counts: Mapping[str, int]) -> ColdStart:
        """The gate applied to label counts per (normalized) category."""
        labels = int(sum(n for n in counts.values() if n > 0))
        categories = sum(1 for n in counts.values() if n > 0)
        return ColdStart(
            labels=labels,
            categories=categories,
            min_labels=self.min_labels,
            min_categories=self.min_categories,
        )


@dataclass(frozen=True)
class ColdStart:
    labels: int  # training labels (expense rows with a correction or an export label)
    categories: int  # distinct normalized categories among them
    min_labels: int
    min_categories: int

    @property
    def labels_needed(self) -> int:
        return max(self.min_labels - self.labels, 0)

    @property
    def categories_needed(self) -> int:
        return max(self.min_categories - self.categories, 0)

    @property
    def ready(self) -> bool:
        return self.labels_needed == 0 and self.categories_needed == 0

    def reason(self) -> str:
        """One line: what there is, what the model needs, and what is still missing."""
        have = (
            f"{self.labels} category label{'s' if self.labels != 1 else ''} across {self.categories} "
            f"categor{'ies' if self.categories != 1 else 'y'}"
        )
        need = (
            f"the category model trains from {self.min_labels} labels across {self.min_categories} categories"
        )
        if self.ready:
            return f"{have}: enough to train ({need})"
        missing = []
        if self.labels_needed:
            missing.append(f"{self.labels_needed} more label{'s' if self.labels_needed != 1 else ''}")
        if self.categories_needed:
            missing.append(
                f"labels in {self.categories_needed} more categor"
                f"{'ies' if self.categories_needed != 1 else 'y'}"
            )
        return f"cold start: {have}; {need}: {' and '.join(missing)} needed"

    def metadata(self) -> dict[str, object]:
        return {
            "labels": self.labels,
            "label_categories": self.categories,
            "labels_needed": self.labels_needed,
            "categories_needed": self.categories_needed,
            "min_labels": self.min_labels,
            "min_categories": self.min_categories,
        }


def label_counts(frame: pd.DataFrame) -> dict[str, int]:
    """Training labels per normalized category in warehouse-shaped rows, counted as the category model
    counts them (its `labelled_rows`: expense rows with a category and a date)."""
    from titans_assets.lib.ml import category
    from titans_assets.lib.ml.features import Vocabulary

    rows = category.labelled_rows(frame, Vocabulary.from_seeds())
    return {str(k): int(v) for k, v in rows["category"].value_counts().items()}


def normalized_counts(pairs: Iterable[tuple[str | None, int]]) -> dict[str, int]:
    """(label as stored, rows) pairs -> rows per normalized category (the model's normalization)."""
    from titans_assets.lib.ml.features import Vocabulary

    pairs = [(label, int(n)) for label, n in pairs if label is not None and str(label).strip()]
    if not pairs:
        return {}
    labels = Vocabulary.from_seeds().category(pd.Series([p[0] for p in pairs], dtype=object))
    out: dict[str, int] = {}
    for norm, (_, n) in zip(labels.tolist(), pairs):
        if norm is not None:
            out[norm] = out.get(norm, 0) + n
    return out


# Training labels in the warehouse, grouped by label as stored: what data.load_transactions reads (the
# mart's rows that are no transfer) with the user's correction winning over the export's label on
# expense rows (categories.corrections.with_corrected_labels), income left out as the model leaves it
# out. tests/test_cold_start.py holds this count equal to label_counts(load_transactions(db)).
_LABEL = "CASE WHEN {corrected} AND f.txn_type = 'Expense' THEN c.category ELSE f.category END"
WAREHOUSE_LABELS_SQL = """
SELECT {label} AS label, count(*) AS n
FROM marts.fct_transactions AS f {join}
WHERE NOT f.is_transfer AND f.txn_date IS NOT NULL AND lower(btrim(coalesce(f.txn_type, ''))) <> 'income'
GROUP BY 1
"""


def labels_sql(corrections: bool) -> str:
    if not corrections:  # no correction was ever made (the table is created with the first)
        return WAREHOUSE_LABELS_SQL.format(label="f.category", join="")
    return WAREHOUSE_LABELS_SQL.format(
        label=_LABEL.format(corrected="c.category IS NOT NULL"),
        join="LEFT JOIN app.category_corrections AS c ON c.transaction_id = f.transaction_id",
    )


def warehouse_status(db, gate: LabelGate) -> ColdStart | None:
    """The gate on the warehouse's labels now; None when nothing is loaded yet. Raises the database's
    errors (DatabaseError E001 when it is down)."""
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT to_regclass('marts.fct_transactions') IS NOT NULL,"
            " to_regclass('app.category_corrections') IS NOT NULL"
        )
        marts, corrections = cur.fetchone()
        if not marts:
            return None
        cur.execute(labels_sql(corrections))
        return gate.status(normalized_counts(cur.fetchall()))


class NotTrained(Exception):
    """A training that did not happen, and why (one line): too few labels, or too little data."""

    def __init__(self, reason: str, metadata: Mapping[str, object] | None = None):
        super().__init__(reason)
        self.reason = reason
        self.metadata = dict(metadata or {})


def train_gated(spec, db, settings, gate: LabelGate, train=None):
    """`train(spec, db, settings)` (default `catalog.train_model`), with the category model held back
    until `gate` passes on the warehouse's labels (`warehouse_status`). Too few labels, or too little
    data for any model (`TrainingDataError`), raise NotTrained."""
    from titans_assets.lib.ml import catalog
    from titans_assets.lib.ml.common import TrainingDataError

    train = train or catalog.train_model
    if spec.key == "category":
        status = warehouse_status(db, gate)
        if status is not None and not status.ready:
            raise NotTrained(f"{status.reason()}; {HOW_TO_LABEL}", status.metadata())
    try:
        return train(spec, db, settings)
    except TrainingDataError as exc:
        raise NotTrained(f"too little data: {exc}") from exc
