"""Service answers and status reports as the tables and series the pages draw."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from titans_assets.lib.dashboard import formatting as fmt

# The cash-flow model's backtest metrics (lib/ml/cashflow/config.py METRIC_NAMES), in the order shown.
BACKTEST_METRICS = (
    ("mase", "MASE (vs seasonal naive 7)"),
    ("mae", "MAE per day"),
    ("rmse", "RMSE per day"),
    ("total_error_30d", "error of the 30-day total"),
    ("total_error_30d_pct", "error of the 30-day total, % of actual"),
    ("interval_coverage", "interval coverage"),
)


def forecast_frame(body: Mapping[str, Any]) -> pd.DataFrame:
    """date, predicted_amount, lower, upper from a /predict/cashflow answer."""
    fc = pd.DataFrame(body["forecast"], columns=["date", "predicted_amount", "lower", "upper"])
    fc["date"] = pd.to_datetime(fc["date"])
    return fc


def _shown(key: str, value: float | None) -> str:
    if value is None:
        return fmt.DASH
    if key == "interval_coverage":
        return fmt.percent(value, 0)
    if key.endswith("_pct"):
        return f"{value:.1f}%"
    return fmt.metric_value(value)


def backtest_rows(entry: Mapping[str, Any]) -> list[dict[str, str]]:
    """The cash-flow champion's backtest metrics beside its best baseline's (a champion_summary entry)."""
    metrics = entry.get("metrics") or {}
    best = entry.get("best_baseline")
    column = f"best baseline ({best})" if best else "best baseline"
    return [
        {
            "metric": label,
            "champion": _shown(key, metrics[key]),
            column: _shown(key, metrics.get(f"baseline.{best}.{key}") if best else None),
        }
        for key, label in BACKTEST_METRICS
        if key in metrics
    ]


def champion_rows(models: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per model of a champion_summary (what `titans status` lists)."""
    rows = []
    for key, m in models.items():
        if m.get("champion") is None:
            rows.append(
                {
                    "model": m.get("name", key),
                    "champion": fmt.DASH,
                    "serving": fmt.DASH,
                    "primary metric": fmt.DASH,
                    "value": fmt.DASH,
                    "best baseline": fmt.DASH,
                    "note": m.get("error") or "no champion yet",
                    "last training": m.get("last_decision") or fmt.DASH,
                }
            )
            continue
        rows.append(
            {
                "model": m["name"],
                "champion": f"v{m['champion']}",
                "serving": m.get("model_kind", "model"),
                "primary metric": m["primary_metric"],
                "value": fmt.metric_value(m.get("value")),
                "best baseline": (
                    f"{m['best_baseline']}: {fmt.metric_value(m['best_baseline_value'])}"
                    if m.get("best_baseline")
                    else fmt.DASH
                ),
                "note": ("higher is better" if m.get("higher_is_better") else "lower is better"),
                "last training": m.get("last_decision") or fmt.DASH,
            }
        )
    return rows


def metric_table(models: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Every logged metric of every champion (model, metric, value), baselines included."""
    rows = [
        {"model": m["name"], "metric": k, "value": v}
        for m in models.values()
        if m.get("champion") is not None
        for k, v in (m.get("metrics") or {}).items()
    ]
    return pd.DataFrame(rows, columns=["model", "metric", "value"])


def check_rows(checks: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """`titans status` check results: failed first, then warnings, running, skipped, not run, passed."""
    order = {"failed": 0, "warning": 1, "running": 2, "skipped": 3, "not run": 4, "passed": 5}
    rows = [{"check": k, "status": v.get("status"), "at": v.get("at")} for k, v in checks.items()]
    frame = pd.DataFrame(rows, columns=["check", "status", "at"])
    return frame.sort_values(
        ["status", "check"], key=lambda s: s.map(order) if s.name == "status" else s, kind="stable"
    ).reset_index(drop=True)


def balance_notes(accounts: pd.DataFrame, currency: str, reporting: str) -> list[str]:
    """What a reader must know about the balances of `accounts` (queries.account_balances): which
    have no opening balance (so theirs is the net flow since their first row, not what the bank holds)
    and which files state no currency (shown in the reporting currency)."""
    notes = []
    unknown = (
        sorted(accounts.loc[~accounts["balance_known"].astype(bool), "account"]) if len(accounts) else []
    )
    if unknown:
        notes.append(
            f"No opening balance for {', '.join(unknown)}: shown from 0 at the first transaction, not "
            "what the bank holds. A statement with balances, or `titans account set-balance ACCOUNT "
            "DATE AMOUNT`, anchors it."
        )
    unstated = sorted(accounts.loc[accounts["currency"].isna(), "account"]) if len(accounts) else []
    if unstated and currency == reporting:
        notes.append(
            f"The files of {', '.join(unstated)} state no currency: taken to be {reporting}, the "
            "reporting currency."
        )
    return notes


def account_balance_rows(accounts: pd.DataFrame) -> pd.DataFrame:
    """The per-account table: account, balance, as of, where its opening balance comes from."""
    source = {"statement": "bank statement", "user": "set by you", "none": "unknown (from 0)"}
    return pd.DataFrame(
        {
            "account": accounts["account"],
            "balance": accounts["balance"].astype(float),
            "as of": accounts["balance_date"],
            "opening balance from": [source.get(s, s) for s in accounts["balance_source"]],
        }
    )
