"""The user's account entries: an opening balance per account (`titans account set-balance`) and
transfer overrides, in the `app` schema (DDL: sql/app_balances.sql), read by dbt's
fct_daily_balances and int_transfer_pairs. Plain Python, parameterized SQL only."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from importlib import resources

from titans_assets.lib.db import Database

_LOCK_KEY = 7_240_019  # the same advisory lock as fct_daily_balances' pre-hook


def ensure_tables(db: Database) -> None:
    db.run_ddl(resources.files("titans_assets.lib").joinpath("sql/app_balances.sql").read_text(), _LOCK_KEY)


def parse_amount(text: str) -> Decimal:
    """`1234.56`, `-1,234.56`, `$1,234.56` -> Decimal with cents; anything else is a ValueError."""
    cleaned = text.strip().replace(",", "").replace("$", "").replace("€", "").replace("£", "")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError(f"not an amount: {text!r}") from None
    if not value.is_finite() or value != value.quantize(Decimal("0.01")) or abs(value) >= Decimal(10) ** 14:
        raise ValueError(f"not an amount with at most 2 decimals: {text!r}")
    return value.quantize(Decimal("0.01"))


def set_balance(db: Database, account: str, day: dt.date, amount: Decimal, note: str | None = None) -> None:
    """The balance of `account` at the end of `day` (again: replaces that day's entry)."""
    if not account.strip():
        raise ValueError("account: empty")
    ensure_tables(db)
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            """INSERT INTO app.account_balances (account, balance_date, balance, note) VALUES (%s, %s, %s, %s)
               ON CONFLICT (account, balance_date) DO UPDATE SET balance = EXCLUDED.balance,
                   note = EXCLUDED.note, set_at = now()""",
            (account, day, amount, note),
        )


def balances(db: Database, account: str | None = None) -> list[tuple[str, dt.date, Decimal]]:
    ensure_tables(db)
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT account, balance_date, balance FROM app.account_balances"
            " WHERE %s IS NULL OR account = %s ORDER BY account, balance_date",
            (account, account),
        )
        return list(cur.fetchall())


def known_accounts(db: Database) -> set[str] | None:
    """The accounts the warehouse knows (marts.dim_accounts), or None before the first build."""
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass('marts.dim_accounts') IS NOT NULL")
        if not cur.fetchone()[0]:
            return None
        cur.execute("SELECT account FROM marts.dim_accounts")
        return {r[0] for r in cur.fetchall()}
