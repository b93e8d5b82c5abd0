"""Small ledgers shaped like the real ones people export (not like our generator's): 20-50 categories
spelled the way a person spells them (`Food & Dining`, `Gas & Fuel`), raw bank strings with store
numbers and processor prefixes, no Reference column, a few incomes a month, gaps, odd amounts.

Used to hold `titans materialize` to "exits 0 and every model has a served predictor" on data whose
shape nobody tuned the models to."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np

CATEGORIES = (
    "Food & Dining",
    "Groceries",
    "Gas & Fuel",
    "Coffee Shops",
    "Restaurants",
    "Fast Food",
    "Alcohol & Bars",
    "Shopping",
    "Clothing",
    "Electronics & Software",
    "Books",
    "Home Improvement",
    "Furniture",
    "Pharmacy",
    "Doctor",
    "Dentist",
    "Gym",
    "Sports",
    "Movies & DVDs",
    "Music",
    "Streaming",
    "Mobile Phone",
    "Internet",
    "Utilities",
    "Rent",
    "Auto Insurance",
    "Auto Payment",
    "Parking",
    "Public Transportation",
    "Ride Share",
    "Air Travel",
    "Hotel",
    "Rental Car & Taxi",
    "Gifts",
    "Charity",
    "Pet Food & Supplies",
    "Veterinary",
    "Hair",
    "Laundry",
    "Office Supplies",
    "Shipping",
    "Bank Fee",
    "ATM Fee",
    "Education",
    "Tuition",
    "Kids Activities",
    "Babysitter & Daycare",
    "Toys",
    "Newspapers & Magazines",
    "Taxes",
)
_PREFIXES = ("", "SQ *", "TST* ", "PAYPAL *", "POS ", "DEBIT CARD PURCHASE - ", "CHECKCARD ")
_TOWNS = ("SAN FRANCISCO CA", "BROOKLYN NY", "AUSTIN TX", "HERSHEY PA", "SEATTLE WA", "CHICAGO IL")


def _merchants(rng: np.random.Generator, k: int) -> list[str]:
    """Made-up store names (no word of the category in them: a bank string does not spell its label)."""

    def word() -> str:
        return "".join(
            rng.choice(list("BCDFGKLMNPRSTVZ")) + rng.choice(list("AEIOU"))
            for _ in range(int(rng.integers(2, 4)))
        )

    return [f"{word()} {word()}" if rng.random() < 0.5 else word() for _ in range(k)]


def write_ledger(path: Path, *, rows: int, n_categories: int, seed: int, end: dt.date) -> Path:
    """One CSV (`Date,Type,Description,Amount,Category`, newest first like many exports) of `rows`
    transactions ending on `end`; about a tenth are incomes without a category."""
    rng = np.random.default_rng(seed)
    cats = [CATEGORIES[i] for i in rng.choice(len(CATEGORIES), size=n_categories, replace=False)]
    weights = rng.dirichlet(np.full(n_categories, 0.7))
    merchants = {c: _merchants(rng, int(rng.integers(1, 6))) for c in cats}
    scale = {c: float(np.exp(rng.uniform(1.5, 6.0))) for c in cats}
    days = max(60, int(rows * 1.2))
    start = end - dt.timedelta(days=days - 1)
    records = []
    n_income = max(2, rows // 10)
    for _ in range(rows - n_income):
        c = cats[int(rng.choice(n_categories, p=weights))]
        m = merchants[c][int(rng.integers(len(merchants[c])))]
        prefix = _PREFIXES[int(rng.integers(len(_PREFIXES)))]
        text = f"{prefix}{m} #{rng.integers(100, 9999)} {_TOWNS[int(rng.integers(len(_TOWNS)))]}"[:40]
        amount = -round(float(scale[c] * rng.lognormal(0.0, 0.6)), 2)
        day = start + dt.timedelta(days=int(rng.integers(days)))
        records.append((day, "Expense", text, amount, c))
    for i in range(n_income):
        day = start + dt.timedelta(days=int(i * days / n_income))
        records.append(
            (
                day,
                "Income",
                f"ACH DEPOSIT PAYROLL {rng.integers(10**5, 10**6)}",
                round(float(rng.normal(2400, 150)), 2),
                "",
            )
        )
    records.sort(key=lambda r: r[0], reverse=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Date", "Type", "Description", "Amount", "Category"])
        for day, kind, text, amount, c in records:
            w.writerow([day.isoformat(), kind, text, f"{amount:.2f}", c])
    return path
