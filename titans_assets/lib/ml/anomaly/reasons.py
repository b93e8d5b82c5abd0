"""The reasons a row is flagged, in words: one sentence per component that reached the reporting
level, strongest first."""

from __future__ import annotations

from typing import Any

import numpy as np

from titans_assets.lib.ml.anomaly.canon import _col
from titans_assets.lib.ml.anomaly.constants import _REASON_LEVEL, COMPONENTS
from titans_assets.lib.ml.anomaly.stats import _nan_to_num


def _money(x: float) -> str:
    return f"{x:,.2f}"


def _reason_amount(r, c) -> str:
    if r["level"] == "merchant":
        return f"amount {r['ratio']:.1f}x this merchant's median ({_money(r['median'])})"
    if r["level"] == "category":
        return f"amount {r['ratio']:.1f}x the median for {c['category'] or 'this category'}"
    kind = "expenses" if c["expense"] else "income"
    return f"amount {r['ratio']:.1f}x the median of all {kind} ({_money(r['median'])})"


def _reason_new(r, c) -> str:
    return f"first transaction with this merchant, {_money(c['abs'])}"


def _reason_atypical(r, c) -> str:
    if r["mc_n"] <= 0:
        return f"merchant '{c['merchant']}' never seen under {c['category']}"
    return f"merchant '{c['merchant']}' rarely seen under {c['category']} ({int(r['mc_n'])} of {int(r['merchant_n'])})"


def _reason_day(r, c) -> str:
    when = "holiday" if c["holiday"] else "weekend"
    n = int(r["merchant_n"])
    return f"{when} charge from a merchant that posts on business days ({round(r['bday_share'] * n)} of {n} postings)"


def _reason_duplicate(r, c) -> str:
    if r["twins_same_day"] > 0:
        times = int(r["twins_same_day"]) + 1
        count = "twice" if times == 2 else f"{times} times"
        return f"same amount charged {count} by this merchant today ({_money(c['abs'])})"
    return f"same amount charged by this merchant the day before ({_money(c['abs'])})"


def _reason_burst(r, c) -> str:
    where = "this merchant" if r["merchant_n"] > 0 else "a merchant never seen before"
    return f"{int(r['small_count'])} charges under {_money(c['small_amount'])} at {where} within a day"


def _reason_frequency(r, c) -> str:
    return f"{int(r['day_count'])} charges from this merchant today (never more than {int(r['day_max'])} a day before)"


def _reason_isolation(r, c) -> str:
    return f"unusual combination of amount, date and merchant history (top {max(100 * (1 - r['isolation_rank']), 0.1):.1f}% of training rows)"


_REASONS = {
    "amount": _reason_amount,
    "new_merchant": _reason_new,
    "atypical_category": _reason_atypical,
    "unusual_day": _reason_day,
    "duplicate": _reason_duplicate,
    "burst": _reason_burst,
    "frequency": _reason_frequency,
    "isolation": _reason_isolation,
}


def _records(columns: dict[str, np.ndarray], rows: np.ndarray) -> list[dict[str, Any]]:
    """The given rows as dicts of plain Python values (what `DataFrame.to_dict("records")` gives)."""
    items = [(k, v.tolist() if v.dtype != object else v) for k, v in columns.items()]
    return [{k: v[i] for k, v in items} for i in rows.tolist()]


def _reasons(comp, c, model: Any, flagged: np.ndarray, risky: np.ndarray | None = None) -> list[list[str]]:
    """Reasons per row, strongest first: every component at or above the reporting level, and for a
    flagged (or `risky`: medium-risk) row at least its strongest component."""
    n = len(flagged)
    w = np.column_stack([model.weights.get(k, 0.0) * _nan_to_num(_col(comp, f"p_{k}")) for k in COMPONENTS])
    show = w >= _REASON_LEVEL
    best = w.argmax(axis=1)
    force = (flagged | (risky if risky is not None else flagged)) & ~show.any(axis=1) & (w.max(axis=1) > 0)
    show[np.flatnonzero(force), best[force]] = True
    out: list[list[str]] = [[] for _ in range(n)]
    rows = np.flatnonzero(show.any(axis=1))
    if len(rows) == 0:
        return out
    comp_rows = _records({k: np.asarray(_col(comp, k)) for k in comp}, rows)
    canon_rows = _records(
        {k: _col(c, k) for k in ("merchant", "category", "abs", "expense", "holiday")}, rows
    )
    for i, r, cr in zip(rows, comp_rows, canon_rows):
        cr["small_amount"] = model.small_amount
        order = np.argsort(-w[i], kind="stable")
        out[i] = [_REASONS[COMPONENTS[k]](r, cr) for k in order if show[i, k]]
    return out


def _baseline_reasons(name: str, c, r: dict[str, Any], risk: np.ndarray) -> list[list[str]]:
    """A `RobustBaseline`'s reason per row (none for a low-risk row): how many robust SDs the amount
    sits above the median it was measured against (`r`: the baseline's raw values)."""
    reasons = []
    cats, amounts, expense = _col(c, "category"), _col(c, "abs"), _col(c, "expense")
    for i in range(len(risk)):
        if risk[i] == "low":
            reasons.append([])
            continue
        usual = (
            f"the usual for {cats[i]}"
            if r["known"][i] and cats[i] is not None
            else "the usual for all transactions"
            if r.get("all")
            else f"the usual for all {'expenses' if expense[i] else 'income'}"
        )
        reasons.append(
            [
                f"amount {_money(float(amounts[i]))} is {float(r['raw'][i]):.1f} robust SDs above "
                f"{usual} (median {_money(float(np.exp(r['med'][i])))}; baseline {name})"
            ]
        )
    return reasons
