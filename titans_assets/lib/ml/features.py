"""The one definition of the row-level features a request can supply.

Training builds its matrices with `prepare` + `row_features` on rows read from the warehouse; the
BentoML service calls the same two functions on a request. Text cleaning ports the dbt macros in
dbt_project/macros/text_normalization.sql (a parity test holds them equal on real rows), and label
aliases come from the dbt seeds at training time and travel inside the model (`Vocabulary`), so the
service needs neither dbt nor the database to normalise `credit_car` to `credit_card`.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from functools import lru_cache, wraps
from pathlib import Path

import numpy as np
import pandas as pd

SEEDS_DIR = Path(__file__).resolve().parents[3] / "dbt_project" / "seeds"

_NON_ALNUM = re.compile(r"[\W_]+")
_SPACES = re.compile(r"\s+")
_DESC_PUNCT = re.compile(r"[^\w&']+|_+")
_DIGIT_WORD = re.compile(r"(?<!\w)[0-9]+(?!\w)")


def _by_value(fn):
    """Run a text cleaner once per distinct value and map back (real columns repeat a few thousand
    merchants over a million rows): identical output, several times faster."""
    @wraps(fn)
    def per_value(s: pd.Series) -> pd.Series:
        codes, uniques = pd.factorize(s, use_na_sentinel=True)
        cleaned = fn(pd.Series(uniques, dtype=object)).to_numpy(dtype=object)
        values = np.append(cleaned, fn(pd.Series([None], dtype=object)).to_numpy(dtype=object))  # code -1: NA
        return pd.Series(values[codes], index=s.index, dtype=object)

    return per_value


def _blank_to_none(s: pd.Series) -> pd.Series:
    """Object dtype with None for blanks (pandas 3's str dtype would turn None into NaN)."""
    return s.astype(object).where(s.str.len() > 0, None)


def _text(s: pd.Series) -> pd.Series:
    return s.astype(object).where(s.notna(), "").map(str).astype(object)


@_by_value
def normalize_label(s: pd.Series) -> pd.Series:
    """dbt `normalize_label`: 'Meals & Entertainment ' -> 'meals_entertainment', '' -> None."""
    out = _text(s).str.strip().str.lower().str.replace(_NON_ALNUM, "_", regex=True).str.strip("_")
    return _blank_to_none(out)


@_by_value
def clean_name(s: pd.Series) -> pd.Series:
    """dbt `clean_name`: lower, whitespace runs collapsed, trimmed, '' -> None."""
    return _blank_to_none(_text(s).str.lower().str.replace(_SPACES, " ", regex=True).str.strip())


@_by_value
def clean_description(s: pd.Series) -> pd.Series:
    """dbt `clean_description`: 'STARBUCKS #1234  Seattle*WA' -> 'starbucks seattle wa'."""
    out = (_text(s).str.lower().str.replace(_DESC_PUNCT, " ", regex=True)
           .str.replace(_DIGIT_WORD, " ", regex=True).str.replace(_SPACES, " ", regex=True).str.strip())
    return _blank_to_none(out)


def merchant_of(reference: pd.Series, description: pd.Series) -> pd.Series:
    """The counterparty: the cleaned reference, else a guess from the description (as in dbt)."""
    return clean_name(reference).combine_first(clean_description(description))


def _read_aliases(path: Path, column: str) -> dict[str, str]:
    if not path.exists():
        return {}
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    keys = normalize_label(pd.Series([r["alias"] for r in rows], dtype=object))
    return {k: r[column] for k, r in zip(keys, rows) if k}


@dataclass(frozen=True)
class Vocabulary:
    """Label aliases (from the dbt seeds), fitted at training time and stored in every model."""

    payment_methods: dict[str, str] = field(default_factory=dict)
    categories: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_seeds(cls, seeds_dir: Path = SEEDS_DIR) -> Vocabulary:
        return cls(payment_methods=_read_aliases(seeds_dir / "payment_method_aliases.csv", "payment_method"),
                   categories=_read_aliases(seeds_dir / "category_aliases.csv", "category"))

    @staticmethod
    def _canonical(s: pd.Series, aliases: dict[str, str]) -> pd.Series:
        return pd.Series([aliases.get(v, v) if v is not None else None for v in normalize_label(s)],
                         index=s.index, dtype=object)

    def payment_method(self, s: pd.Series) -> pd.Series:
        return self._canonical(s, self.payment_methods)

    def category(self, s: pd.Series) -> pd.Series:
        return self._canonical(s, self.categories)


def prepare(frame: pd.DataFrame, vocabulary: Vocabulary) -> pd.DataFrame:
    """Canonical request/row columns: txn_date (datetime64), amount (float or NaN), description,
    reference (str, '' when missing), payment_method, category (normalized or None), merchant.

    Accepts warehouse rows (fct_transactions / ml_transaction_features) and service requests alike;
    `date` is accepted for `txn_date`."""
    if "txn_date" not in frame and "date" in frame:
        frame = frame.rename(columns={"date": "txn_date"})
    n = len(frame)

    def col(name: str) -> pd.Series:
        return frame[name] if name in frame else pd.Series([None] * n, index=frame.index, dtype=object)

    out = pd.DataFrame(index=frame.index)
    out["txn_date"] = pd.to_datetime(col("txn_date")).dt.normalize().astype("datetime64[ns]")
    out["amount"] = pd.to_numeric(col("amount"), errors="coerce").astype(float)
    out["description"] = _text(col("description"))
    out["reference"] = _text(col("reference"))
    out["payment_method"] = vocabulary.payment_method(col("payment_method"))
    out["category"] = vocabulary.category(col("category"))
    out["merchant"] = merchant_of(out["reference"], out["description"])
    return out


def text_of(prepared: pd.DataFrame) -> pd.Series:
    """What the text models read: the description and the reference."""
    return (prepared["description"] + " | " + prepared["reference"]).str.lower()


@lru_cache(maxsize=1)
def _holidays() -> pd.DatetimeIndex:
    from pandas.tseries.holiday import USFederalHolidayCalendar

    return USFederalHolidayCalendar().holidays(start="1990-01-01", end="2100-12-31")


def _cyclic(values: np.ndarray, period: float, name: str) -> dict[str, np.ndarray]:
    angle = 2 * np.pi * values / period
    return {f"{name}_sin": np.sin(angle), f"{name}_cos": np.cos(angle)}


def time_features(dates: pd.Series) -> pd.DataFrame:
    """Calendar features of a date: cyclical encodings, weekends, US federal holidays, paydays (1st, 15th)."""
    d = pd.to_datetime(dates)
    dow = d.dt.day_of_week.to_numpy(dtype=float)
    dom = d.dt.day.to_numpy(dtype=float)
    month = d.dt.month.to_numpy(dtype=float)
    days_in_month = d.dt.days_in_month.to_numpy(dtype=float)
    weekend = dow >= 5
    holiday = d.isin(_holidays()).to_numpy()
    # Paydays on the 1st and the 15th: days since the last one and until the next one.
    since = np.where(dom >= 15, dom - 15, dom - 1)
    until = np.where(dom < 15, 15 - dom, days_in_month - dom + 1)
    feats = {
        "day_of_week": dow, "day_of_month": dom, "month": month,
        "quarter": d.dt.quarter.to_numpy(dtype=float), "day_of_year": d.dt.day_of_year.to_numpy(dtype=float),
        **_cyclic(dow, 7, "dow"), **_cyclic(dom - 1, days_in_month, "dom"), **_cyclic(month - 1, 12, "month"),
        "is_weekend": weekend.astype(float), "is_holiday": holiday.astype(float),
        "is_business_day": (~weekend & ~holiday).astype(float),
        "is_month_start": (dom <= 3).astype(float), "is_month_end": (dom > days_in_month - 3).astype(float),
        "days_since_payday": since, "days_until_payday": until,
    }
    return pd.DataFrame(feats, index=dates.index)


def amount_features(amount: pd.Series) -> pd.DataFrame:
    """Shape of an amount: size on a log scale, sign, roundness."""
    a = amount.to_numpy(dtype=float)
    absolute = np.abs(a)
    cents = np.round(absolute * 100) % 100
    return pd.DataFrame({
        "log_abs_amount": np.log1p(absolute), "is_expense": (a < 0).astype(float),
        "is_round_10": ((cents == 0) & (np.round(absolute) % 10 == 0)).astype(float),
        "has_cents": (cents != 0).astype(float),
    }, index=amount.index)


def row_features(prepared: pd.DataFrame, include_amount: bool = True) -> pd.DataFrame:
    """The numeric row-level features of prepared rows (training and serving alike)."""
    parts = [time_features(prepared["txn_date"])]
    if include_amount:
        parts.append(amount_features(prepared["amount"]))
    return pd.concat(parts, axis=1)
