"""Should the models retrain? New validated data since the last training, and drift against its window.

Pure functions on DataFrames: the Dagster asset `ml/retrain_signal` reads the marts and the last
training's data window and calls `assess` (PSI of amounts and of the category mix, the daily net
flow's level, new rows and days); `should_retrain` decides.

Design notes (the measures, reading PSI, the noise floor): docs/model-design.md#titans_assetslibmlmonitoringpy
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Thresholds:
    min_new_rows: int = 500  # retrain after this many validated new rows ...
    min_new_days: int = 30  # ... or this many days of data past the last training window
    psi: float = 0.25  # amount per category, and category mix
    flow_level: float = 3.0  # |mean daily net after the window - mean in it|, in SDs of its 30-day means
    min_rows_per_category: int = 30  # both sides, for a category's amount PSI
    min_current_rows: int = 100  # below this the current sample is too small to call drift
    min_current_days: int = 14  # for the flow level

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Thresholds:
        env = os.environ if environ is None else environ
        base = cls()

        def read(name: str, default, cast):
            raw = env.get(name)
            if raw in (None, ""):
                return default
            try:
                value = cast(raw)
            except ValueError:
                raise ValueError(f"E003 invalid input: {name}={raw!r} is not a number") from None
            if value < 0:
                raise ValueError(f"E003 invalid input: {name} must not be negative")
            return value

        return cls(
            min_new_rows=read("TITANS_RETRAIN_MIN_ROWS", base.min_new_rows, int),
            min_new_days=read("TITANS_RETRAIN_MIN_DAYS", base.min_new_days, int),
            psi=read("TITANS_DRIFT_PSI", base.psi, float),
            flow_level=read("TITANS_DRIFT_FLOW_LEVEL", base.flow_level, float),
        )


def psi(reference, current, bins: int = 10) -> float:
    """Population stability index of a numeric variable, on the reference's quantile bins."""
    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(current, dtype=float)
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    if len(ref) == 0 or len(cur) == 0:
        return float("nan")
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    return counts_psi(
        np.bincount(np.searchsorted(edges, ref, side="right"), minlength=len(edges) + 1),
        np.bincount(np.searchsorted(edges, cur, side="right"), minlength=len(edges) + 1),
    )


def counts_psi(reference_counts, current_counts) -> float:
    """PSI between two samples counted over the same bins. Shares are smoothed by half a count per bin
    (Jeffreys), so an empty bin in a small sample counts as rare, not as impossible."""
    p = np.asarray(reference_counts, dtype=float) + 0.5
    q = np.asarray(current_counts, dtype=float) + 0.5
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum((q - p) * np.log(q / p)))


def psi_noise_floor(n_ref: int, n_cur: int, bins: int, alpha: float = 0.01) -> float:
    """The PSI that two samples of sizes n_ref and n_cur of one distribution exceed with probability alpha."""
    from scipy.stats import chi2

    if n_ref == 0 or n_cur == 0 or bins < 2:
        return float("inf")
    return float(chi2.ppf(1 - alpha, bins - 1) * (1 / n_ref + 1 / n_cur))


def category_mix_psi(reference: pd.Series, current: pd.Series) -> tuple[float, float]:
    """PSI of the share of expense transactions per category, and its noise floor."""
    ref, cur = reference.dropna().value_counts(), current.dropna().value_counts()
    if ref.empty or cur.empty:
        return float("nan"), float("inf")
    support = ref.index.union(cur.index)
    value = counts_psi(ref.reindex(support, fill_value=0), cur.reindex(support, fill_value=0))
    return value, psi_noise_floor(int(ref.sum()), int(cur.sum()), len(support))


def amount_psi_by_category(
    reference: pd.DataFrame, current: pd.DataFrame, min_rows: int, bins: int = 10
) -> dict[str, tuple[float, float]]:
    """category -> (PSI of |amount|, its noise floor), for categories with `min_rows` rows on both sides."""
    out = {}
    ref_groups = dict(list(reference.groupby("category")["amount"]))
    for cat, cur_amounts in current.groupby("category")["amount"]:
        ref_amounts = ref_groups.get(cat)
        if ref_amounts is not None and len(ref_amounts) >= min_rows and len(cur_amounts) >= min_rows:
            out[str(cat)] = (
                round(psi(ref_amounts.abs(), cur_amounts.abs(), bins), 4),
                round(psi_noise_floor(len(ref_amounts), len(cur_amounts), bins), 4),
            )
    return dict(sorted(out.items(), key=lambda kv: -kv[1][0]))


def flow_level_shift(reference: pd.Series, current: pd.Series, window: int = 30) -> float:
    """How far the mean daily net flow after the training window moved from the mean in it, in standard
    deviations of the reference's rolling `window`-day means (daily flows alone swing with every
    payday; a month's mean is the level a person notices)."""
    ref, cur = reference.dropna().astype(float), current.dropna().astype(float)
    window = min(window, len(cur), len(ref) // 2)
    if window < 1 or cur.empty:
        return float("nan")
    sd = ref.rolling(window).mean().dropna().std(ddof=1)
    return float((cur.mean() - ref.mean()) / sd) if sd > 0 else float("nan")


@dataclass
class Assessment:
    retrain: bool
    reasons: list[str]
    last_trained_at: str | None
    window_start: str | None
    window_end: str | None
    new_rows: int
    new_days: int
    current_rows: int
    drift: dict[str, float | None] = field(default_factory=dict)  # summary figures
    amount_psi: dict[str, float] = field(default_factory=dict)  # per category
    drifted_categories: list[str] = field(default_factory=list)  # PSI above the threshold and the noise

    def to_dict(self) -> dict:
        return asdict(self)


def _finite(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 4)


def assess(
    transactions: pd.DataFrame,
    daily: pd.DataFrame,
    window: dict | None,
    last_trained_at: float | None,
    thresholds: Thresholds,
) -> Assessment:
    """The retrain decision.

    transactions: txn_date, txn_type, category, amount, loaded_at (epoch seconds) of the clean
    transactions; daily: metric_date, net; window: the last training's data window
    (train_start, test_end) or None when nothing was trained yet.
    """
    if (
        window is None
        or last_trained_at is None
        or not window.get("train_start")
        or not window.get("test_end")
    ):
        return Assessment(
            True, ["no model has been trained yet"], None, None, None, len(transactions), 0, len(transactions)
        )
    start, end = dt.date.fromisoformat(window["train_start"]), dt.date.fromisoformat(window["test_end"])
    dates = pd.to_datetime(transactions["txn_date"]).dt.date
    in_window = (dates >= start) & (dates <= end)
    after = dates > end
    new_rows = int((transactions["loaded_at"] > last_trained_at).sum())
    latest = dates.max() if len(dates) else None
    new_days = max((latest - end).days, 0) if latest is not None else 0

    expenses = transactions["txn_type"].eq("Expense")
    ref, cur = transactions[in_window & expenses], transactions[after & expenses]
    day = pd.to_datetime(daily["metric_date"]).dt.date
    ref_flow, cur_flow = daily.loc[(day >= start) & (day <= end), "net"], daily.loc[day > end, "net"]

    enough = len(cur) >= thresholds.min_current_rows
    amount = amount_psi_by_category(ref, cur, thresholds.min_rows_per_category) if enough else {}
    drifted = [c for c, (value, floor) in amount.items() if value > max(thresholds.psi, floor)]
    mix, mix_floor = (
        category_mix_psi(ref["category"], cur["category"]) if enough else (float("nan"), float("inf"))
    )
    level = (
        flow_level_shift(ref_flow, cur_flow) if len(cur_flow) >= thresholds.min_current_days else float("nan")
    )
    worst = drifted[0] if drifted else (next(iter(amount)) if amount else None)

    reasons = []
    if new_rows >= thresholds.min_new_rows:
        reasons.append(f"{new_rows} new rows since the last training (threshold {thresholds.min_new_rows})")
    if new_days >= thresholds.min_new_days:
        reasons.append(
            f"{new_days} days of data past the training window (threshold {thresholds.min_new_days})"
        )
    if drifted:
        shown = ", ".join(f"{c} {amount[c][0]:.2f}" for c in drifted[:3])
        reasons.append(f"amount drift (PSI > {thresholds.psi}) in {len(drifted)} categories: {shown}")
    if np.isfinite(mix) and mix > max(thresholds.psi, mix_floor):
        reasons.append(f"category mix drift: PSI {mix:.2f} > {thresholds.psi}")
    if np.isfinite(level) and abs(level) > thresholds.flow_level:
        reasons.append(f"daily net flow level moved {level:+.2f} SD (threshold {thresholds.flow_level})")
    return Assessment(
        retrain=bool(reasons),
        reasons=reasons,
        last_trained_at=dt.datetime.fromtimestamp(last_trained_at, tz=dt.UTC).isoformat(timespec="seconds"),
        window_start=start.isoformat(),
        window_end=end.isoformat(),
        new_rows=new_rows,
        new_days=new_days,
        current_rows=int(after.sum()),
        drift={
            "max_amount_psi": _finite(amount[worst][0]) if worst else None,
            "max_amount_psi_category": worst,
            "category_mix_psi": _finite(mix),
            "flow_level_sd": _finite(level),
        },
        amount_psi={c: value for c, (value, _) in amount.items()},
        drifted_categories=drifted,
    )


TRANSACTIONS_SQL = """
SELECT txn_date, txn_type, category, amount, extract(epoch FROM loaded_at)::float8 AS loaded_at
FROM marts.fct_transactions
"""
DAILY_SQL = "SELECT metric_date, net FROM marts.fct_daily_metrics"


def read_marts(db) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What `assess` needs from the marts."""
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(TRANSACTIONS_SQL)
        tx = pd.DataFrame(cur.fetchall(), columns=[d[0] for d in cur.description])
        cur.execute(DAILY_SQL)
        daily = pd.DataFrame(cur.fetchall(), columns=[d[0] for d in cur.description])
    if not tx.empty:
        tx["amount"] = tx["amount"].astype(float)
    if not daily.empty:
        daily["net"] = daily["net"].astype(float)
    else:
        daily = pd.DataFrame({"metric_date": pd.Series(dtype=object), "net": pd.Series(dtype=float)})
    if tx.empty:
        tx = pd.DataFrame(
            {c: pd.Series(dtype=object) for c in ("txn_date", "txn_type", "category")}
            | {"amount": pd.Series(dtype=float), "loaded_at": pd.Series(dtype=float)}
        )
    return tx, daily


def should_retrain(
    signal: dict | None, signal_at: float | None, last_training_at: float | None, checks_failed: list[str]
) -> tuple[bool, str]:
    """The retrain sensor's rule, given the newest `ml/retrain_signal` (its metadata and time), when a
    challenger was last trained, and which blocking checks on the data it read currently fail."""
    if signal is None or signal_at is None:
        return False, "no retrain signal yet"
    if not signal.get("retrain"):
        return False, "the signal says no retraining is needed"
    if last_training_at is not None and last_training_at >= signal_at:
        return False, "a training ran after the signal was computed"
    if checks_failed:
        return False, f"blocking checks failed: {', '.join(checks_failed)}"
    return True, "; ".join(signal.get("reasons") or ["retrain requested"])
