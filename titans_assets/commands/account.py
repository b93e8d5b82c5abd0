"""`titans account set-balance ACCOUNT DATE AMOUNT` / `titans account balances`: an account's balance
on a day, for accounts whose files carry none (lib/balances.py; read by dbt's fct_daily_balances on
the next `titans materialize`). Thin click wrapper."""

from __future__ import annotations

import datetime as dt

import click


@click.group("account")
def account() -> None:
    """Accounts: opening balances for the daily balances."""


@account.command("set-balance")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("day", metavar="DATE")
@click.argument("amount", metavar="AMOUNT")
@click.option("--note", default=None, help="Why (kept beside the entry).")
def set_balance(account_name: str, day: str, amount: str, note: str | None) -> None:
    """The balance of ACCOUNT at the end of DATE (YYYY-MM-DD), e.g. `titans account set-balance
    business_checking 2024-12-31 25000.00`; it anchors the account's daily balances."""
    from titans_assets.lib import balances
    from titans_assets.lib.db import get_database

    try:
        when = dt.date.fromisoformat(day)
    except ValueError:
        raise click.BadParameter(f"E003 DATE must be YYYY-MM-DD, got {day!r}", param_hint="DATE") from None
    try:
        value = balances.parse_amount(amount)
    except ValueError as exc:
        raise click.BadParameter(f"E003 {exc}", param_hint="AMOUNT") from None
    db = get_database()
    balances.set_balance(db, account_name, when, value, note)
    known = balances.known_accounts(db)
    click.echo(
        f"{account_name}: balance {value:,.2f} at the end of {when.isoformat()} "
        "(applied by the next `titans materialize`)"
    )
    if known is not None and account_name not in known:
        click.echo(
            f"note: no loaded account is named {account_name!r} yet (known: {', '.join(sorted(known)) or 'none'})",
            err=True,
        )


@account.command("balances")
def list_balances() -> None:
    """The balances set with set-balance."""
    from titans_assets.lib import balances
    from titans_assets.lib.db import get_database

    rows = balances.balances(get_database())
    for name, when, value in rows:
        click.echo(f"{name:<32} {when.isoformat()} {value:>16,.2f}")
    if not rows:
        click.echo("(no balances set)")
