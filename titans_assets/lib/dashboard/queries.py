"""The dashboard's SQL against the dbt marts: parameterized, aggregated in PostgreSQL.

Every value a page shows comes from one of these functions; user input only ever reaches SQL as a
bound parameter (filters, dates, limits) or as an identifier chosen from a fixed list (sort columns).
Pages over a million transactions stay fast because the database returns aggregates (a row per day,
month, category or histogram bin) and at most `limit` transaction rows.

Money sums are cast to float8 in SQL (the marts store numeric(14,2)); the pages print them rounded
to cents.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from titans_assets.lib.dashboard.periods import Period
from titans_assets.lib.db import Database

TRANSACTIONS = "marts.fct_transactions"
DAILY = "marts.fct_daily_metrics"
# A category for every row, as marts.fct_monthly_category reports them.
CATEGORY_LABEL = "coalesce(category, case when txn_type = 'Income' then 'income' else 'uncategorized' end)"
TABLE_COLUMNS = (
    "txn_date",
    "account",
    "txn_type",
    "description",
    "amount",
    "category",
    "payment_method",
    "status",
    "reference",
    "transaction_id",
)
SORTABLE = {
    "date": "txn_date",
    "amount": "amount",
    "size": "abs_amount",
    "description": "description",
    "category": "category",
    "account": "account",
    "payment method": "payment_method",
}
MAX_TABLE_ROWS = 1000


def _frame(db: Database, query, params: Sequence = ()) -> pd.DataFrame:
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(query, list(params))
        columns = [d.name for d in cur.description]
        return pd.DataFrame(cur.fetchall(), columns=columns)


def _one(db: Database, query, params: Sequence = ()):
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(query, list(params))
        return cur.fetchone()


def relation_exists(db: Database, name: str) -> bool:
    return _one(db, "SELECT to_regclass(%s) IS NOT NULL", (name,))[0]


# ---------------------------------------------------------------------------------------------- bounds
@dataclass(frozen=True)
class DataBounds:
    first: dt.date
    last: dt.date
    transactions: int


def data_bounds(db: Database) -> DataBounds | None:
    """First and last transaction date and the count; None when the marts are missing or empty."""
    if not (relation_exists(db, TRANSACTIONS) and relation_exists(db, DAILY)):
        return None
    first, last, n = _one(
        db,
        f"SELECT min(metric_date), max(metric_date), coalesce(sum(transaction_count), 0)::bigint"
        f" FROM {DAILY}",
    )
    if first is None or n == 0:
        return None
    return DataBounds(first, last, int(n))


# ---------------------------------------------------------------------------------------------- overview
@dataclass(frozen=True)
class Totals:
    income: float
    expenses: float  # positive
    net: float
    transactions: int
    balance: float  # running balance (cumulative net since the first transaction) at the period's end

    def as_dict(self) -> dict[str, float]:
        return {
            "income": self.income,
            "expenses": self.expenses,
            "net": self.net,
            "balance": self.balance,
            "transactions": float(self.transactions),
        }


def period_totals(db: Database, period: Period) -> Totals:
    """Income, expenses and net of a period (from fct_daily_metrics) and the balance at its end."""
    income, expenses, net, n, balance = _one(
        db,
        f"""
        SELECT coalesce(sum(total_income), 0)::float8, coalesce(sum(total_expenses), 0)::float8,
               coalesce(sum(net), 0)::float8, coalesce(sum(transaction_count), 0)::bigint,
               (SELECT running_balance::float8 FROM {DAILY} WHERE metric_date <= %s
                ORDER BY metric_date DESC LIMIT 1)
        FROM {DAILY} WHERE metric_date BETWEEN %s AND %s""",
        (period.end, period.start, period.end),
    )
    return Totals(income, expenses, net, int(n), balance or 0.0)


def spending_by_category(db: Database, period: Period) -> pd.DataFrame:
    """category, spent (positive), transactions: the period's expenses, largest first (a transfer between
    the user's own accounts is not spending)."""
    return _frame(
        db,
        f"""
        SELECT coalesce(category, 'uncategorized') AS category, sum(-amount)::float8 AS spent,
               count(*) AS transactions
        FROM {TRANSACTIONS} WHERE txn_type = 'Expense' AND NOT is_transfer AND txn_date BETWEEN %s AND %s
        GROUP BY 1 ORDER BY spent DESC, category""",
        (period.start, period.end),
    )


def balance_series(db: Database) -> pd.DataFrame:
    """metric_date, net, running_balance for every day of the data (a row per day)."""
    return _frame(
        db,
        f"SELECT metric_date, net::float8 AS net, running_balance::float8 AS running_balance"
        f" FROM {DAILY} ORDER BY metric_date",
    )


def recent_transactions(db: Database, period: Period, limit: int = 10) -> pd.DataFrame:
    """The period's latest transactions, newest first."""
    return _frame(
        db,
        f"""
        SELECT txn_date, account, description, amount::float8 AS amount, {CATEGORY_LABEL} AS category,
               payment_method
        FROM {TRANSACTIONS} WHERE txn_date BETWEEN %s AND %s
        ORDER BY txn_date DESC, source_file, line_number DESC LIMIT %s""",
        (period.start, period.end, int(limit)),
    )


# ---------------------------------------------------------------------------------------------- balances
# Balances come from the accounts' daily balances (fct_daily_balances: opened from a statement's or the
# user's balance), never from cumulative net flow. An account whose files state no currency is shown in
# the reporting currency, the rule every household figure follows (fct_transactions.amount_reporting);
# accounts in two currencies are never added up.
BALANCES = "marts.fct_daily_balances"
HOUSEHOLD_BALANCES = "marts.fct_daily_household_balances"


def reporting_currency(db: Database) -> str:
    """The currency the marts were built to report in (fct_transactions.reporting_currency; USD when empty)."""
    row = _one(db, f"SELECT max(reporting_currency) FROM {TRANSACTIONS}")
    return row[0] if row and row[0] else "USD"


def balance_currencies(db: Database) -> list[str]:
    """The currencies of the household's accounts (unstated -> the reporting currency), the reporting
    currency first; [] before the balances are built."""
    if not relation_exists(db, BALANCES):
        return []
    reporting = reporting_currency(db)
    found = [
        c
        for (c,) in _frame(
            db, f"SELECT DISTINCT coalesce(currency, %s) AS c FROM {BALANCES}", (reporting,)
        ).itertuples(index=False)
    ]
    return sorted(found, key=lambda c: (c != reporting, c))


def account_balances(db: Database, on: dt.date, currency: str) -> pd.DataFrame:
    """Each account in `currency` at the end of `on` (or its last day before): account, currency as
    stated (None: unstated), balance, balance_date, balance_source, balance_known."""
    return _frame(
        db,
        f"""
        SELECT DISTINCT ON (account) account, currency, balance::float8 AS balance, balance_date,
               balance_source, balance_known
        FROM {BALANCES}
        WHERE coalesce(currency, %s) = %s AND balance_date <= %s
        ORDER BY account, balance_date DESC""",
        (reporting_currency(db), currency, on),
    )


def balance_history(db: Database, currency: str, start: dt.date, end: dt.date) -> pd.DataFrame:
    """balance_date, account, balance per day of the period for the accounts in `currency`, and the
    household's total in that currency as account '(total)'."""
    reporting = reporting_currency(db)
    return _frame(
        db,
        f"""
        SELECT balance_date, account, balance::float8 AS balance FROM {BALANCES}
        WHERE coalesce(currency, %s) = %s AND balance_date BETWEEN %s AND %s
        UNION ALL
        SELECT balance_date, '(total)', sum(balance)::float8 FROM {HOUSEHOLD_BALANCES}
        WHERE coalesce(currency, %s) = %s AND balance_date BETWEEN %s AND %s
        GROUP BY balance_date
        ORDER BY 2, 1""",
        (reporting, currency, start, end, reporting, currency, start, end),
    )


def household_balance(db: Database, on: dt.date, currency: str) -> float | None:
    """The household's balance in `currency` at the end of `on` (the latest day on or before it)."""
    row = _one(
        db,
        f"""
        SELECT sum(balance)::float8 FROM {HOUSEHOLD_BALANCES}
        WHERE coalesce(currency, %s) = %s
          AND balance_date = (SELECT max(balance_date) FROM {HOUSEHOLD_BALANCES} WHERE balance_date <= %s)""",
        (reporting_currency(db), currency, on),
    )
    return row[0] if row else None


def transfers(db: Database, period: Period, limit: int = 200) -> pd.DataFrame:
    """The period's transfers between the user's own accounts, one row per pair (by the day money
    left): out_date, from_account, to_account, amount (positive), currency, in_date, and the two
    descriptions. Newest first."""
    return _frame(
        db,
        f"""
        SELECT o.txn_date AS out_date, o.account AS from_account, i.account AS to_account,
               (-o.amount)::float8 AS amount, o.currency, i.txn_date AS in_date,
               o.description AS out_description, i.description AS in_description
        FROM {TRANSACTIONS} AS o
        JOIN {TRANSACTIONS} AS i ON i.transfer_pair_id = o.transfer_pair_id AND i.amount > 0
        WHERE o.is_transfer AND o.amount < 0 AND o.txn_date BETWEEN %s AND %s
        ORDER BY o.txn_date DESC, o.account, o.transfer_pair_id LIMIT %s""",
        (period.start, period.end, int(limit)),
    )


def transfer_counts(db: Database, period: Period) -> tuple[int, int]:
    """(paired transfers, rows that look like a transfer but have no other side) in the period."""
    pairs, unpaired = _one(
        db,
        f"""
        SELECT count(DISTINCT transfer_pair_id) FILTER (WHERE is_transfer),
               count(*) FILTER (WHERE transfer_unpaired)
        FROM {TRANSACTIONS} WHERE txn_date BETWEEN %s AND %s""",
        (period.start, period.end),
    )
    return int(pairs), int(unpaired)


# ---------------------------------------------------------------------------------------------- transactions
@dataclass(frozen=True)
class TransactionFilter:
    start: dt.date | None = None
    end: dt.date | None = None
    accounts: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()  # CATEGORY_LABEL values: expense categories, 'income', 'uncategorized'
    types: tuple[str, ...] = ()  # 'Income' / 'Expense'
    min_amount: float | None = None  # on |amount|
    max_amount: float | None = None
    text: str = ""  # in description, reference or merchant, case-insensitive


def like_pattern(text: str) -> str:
    """A substring pattern for ILIKE with the user's %, _ and \\ taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def filter_where(f: TransactionFilter) -> tuple[str, list]:
    """The WHERE condition of a filter and its parameters (never the values themselves)."""
    clauses: list[str] = []
    params: list = []
    if f.start is not None:
        clauses.append("txn_date >= %s")
        params.append(f.start)
    if f.end is not None:
        clauses.append("txn_date <= %s")
        params.append(f.end)
    if f.accounts:
        clauses.append("account = ANY(%s)")
        params.append(list(f.accounts))
    if f.categories:
        clauses.append(f"{CATEGORY_LABEL} = ANY(%s)")
        params.append(list(f.categories))
    if f.types:
        clauses.append("txn_type = ANY(%s)")
        params.append(list(f.types))
    if f.min_amount is not None:
        clauses.append("abs_amount >= %s")
        params.append(f.min_amount)
    if f.max_amount is not None:
        clauses.append("abs_amount <= %s")
        params.append(f.max_amount)
    text = f.text.strip()
    if text:
        clauses.append("(description ILIKE %s OR reference ILIKE %s OR merchant ILIKE %s)")
        params.extend([like_pattern(text)] * 3)
    return (" AND ".join(clauses) if clauses else "TRUE"), params


@dataclass(frozen=True)
class FilterOptions:
    accounts: list[str]
    categories: list[str]
    types: list[str]


def filter_options(db: Database) -> FilterOptions:
    """The values the filters offer, from the small marts (no scan of the transactions)."""
    accounts = _frame(db, "SELECT DISTINCT account FROM marts.dim_files ORDER BY 1")["account"].tolist()
    cats = _frame(db, "SELECT DISTINCT category, txn_type FROM marts.fct_monthly_category")
    return FilterOptions(accounts, sorted(cats["category"].unique()), sorted(cats["txn_type"].unique()))


def payment_method_options(db: Database) -> list[str]:
    return _frame(
        db, f"SELECT DISTINCT payment_method FROM {TRANSACTIONS} WHERE payment_method IS NOT NULL ORDER BY 1"
    )["payment_method"].tolist()


@dataclass(frozen=True)
class FilteredSummary:
    transactions: int
    income: float
    expenses: float

    @property
    def net(self) -> float:
        return self.income - self.expenses


@dataclass(frozen=True)
class FilteredView:
    """What the Transactions page charts, from one scan of the filtered rows."""

    summary: FilteredSummary
    monthly: pd.DataFrame  # month, income, expenses, net
    payment_methods: pd.DataFrame  # payment_method, transactions, total
    histogram: pd.DataFrame  # lower, upper, transactions (|amount|, log-spaced bins)


BINS_PER_DECADE = 8  # histogram bins of |amount|: edges at 10^(k/8), i.e. x1.33 per bin


def histogram_from_buckets(
    buckets: list[int], counts: list[int], per_decade: int = BINS_PER_DECADE
) -> pd.DataFrame:
    """Log buckets k (|amount| in [10^(k/d), 10^((k+1)/d))) as a histogram from the lowest to the highest
    bucket present, empty bins in between included."""
    if not buckets:
        return pd.DataFrame({"lower": [], "upper": [], "transactions": []})
    got = dict(zip((int(b) for b in buckets), (int(c) for c in counts)))
    ks = range(min(got), max(got) + 1)
    return pd.DataFrame(
        {
            "lower": [10 ** (k / per_decade) for k in ks],
            "upper": [10 ** ((k + 1) / per_decade) for k in ks],
            "transactions": [got.get(k, 0) for k in ks],
        }
    )


def filtered_view(db: Database, f: TransactionFilter) -> FilteredView:
    """Totals, months, payment methods and the |amount| histogram of the filtered rows in one pass
    (GROUPING SETS): a page over a million rows pays for one scan, not four."""
    where, params = filter_where(f)
    rows = _frame(
        db,
        f"""
        SELECT grouping(month) AS g_month, grouping(payment_method) AS g_method, grouping(bucket) AS g_bucket,
               month, payment_method, bucket, count(*) AS transactions,
               coalesce(sum(amount) FILTER (WHERE txn_type = 'Income'), 0)::float8 AS income,
               coalesce(sum(-amount) FILTER (WHERE txn_type = 'Expense'), 0)::float8 AS expenses,
               sum(amount)::float8 AS net, sum(abs_amount)::float8 AS total
        FROM (SELECT month, coalesce(payment_method, 'unknown') AS payment_method, txn_type, amount, abs_amount,
                     CASE WHEN abs_amount > 0 THEN floor(%s * log(abs_amount::float8))::int END AS bucket
              FROM {TRANSACTIONS} WHERE {where}) f
        GROUP BY GROUPING SETS ((month), (payment_method), (bucket), ())""",
        [BINS_PER_DECADE, *params],
    )
    total = rows[(rows.g_month == 1) & (rows.g_method == 1) & (rows.g_bucket == 1)]
    if total.empty:
        summary = FilteredSummary(0, 0.0, 0.0)
    else:
        t = total.iloc[0]
        summary = FilteredSummary(int(t.transactions), float(t.income), float(t.expenses))
    monthly = (
        rows[rows.g_month == 0][["month", "income", "expenses", "net"]]
        .sort_values("month")
        .reset_index(drop=True)
    )
    methods = (
        rows[rows.g_method == 0][["payment_method", "transactions", "total"]]
        .sort_values(["transactions", "payment_method"], ascending=[False, True])
        .reset_index(drop=True)
    )
    buckets = rows[(rows.g_bucket == 0) & rows.bucket.notna()]
    hist = histogram_from_buckets(buckets["bucket"].tolist(), buckets["transactions"].tolist())
    return FilteredView(summary, monthly, methods, hist)


def _order_by(sort: str, descending: bool):
    from psycopg2 import sql

    if sort not in SORTABLE:
        raise ValueError(f"E003 invalid input: sort: unknown column {sort!r} (known: {', '.join(SORTABLE)})")
    direction = sql.SQL("DESC NULLS LAST" if descending else "ASC NULLS LAST")
    return sql.SQL("{} {}, transaction_id").format(sql.Identifier(SORTABLE[sort]), direction)


def _table_query(f: TransactionFilter, sort: str, descending: bool):
    from psycopg2 import sql

    where, params = filter_where(f)
    cols = sql.SQL(", ").join(
        sql.SQL("{}::float8 AS amount").format(sql.Identifier(c)) if c == "amount" else sql.Identifier(c)
        for c in TABLE_COLUMNS
    )
    query = sql.SQL("SELECT {cols} FROM marts.fct_transactions WHERE {where} ORDER BY {order}").format(
        cols=cols, where=sql.SQL(where), order=_order_by(sort, descending)
    )
    return query, params


def transactions_table(
    db: Database,
    f: TransactionFilter,
    sort: str = "date",
    descending: bool = True,
    limit: int = MAX_TABLE_ROWS,
) -> pd.DataFrame:
    """The filtered rows, sorted in SQL (over all of them, not just the page shown), first `limit`."""
    from psycopg2 import sql

    query, params = _table_query(f, sort, descending)
    return _frame(db, sql.SQL("{} LIMIT %s").format(query), [*params, int(limit)])


def transactions_csv(
    db: Database, f: TransactionFilter, sort: str = "date", descending: bool = True
) -> bytes:
    """Every filtered row as CSV (header included), streamed out of PostgreSQL with COPY; text cells that
    a spreadsheet would run as formulas are neutralised (uploads.neutralise_formula), numbers stay numbers."""
    from titans_assets.lib.dashboard.uploads import neutralise_csv

    query, params = _table_query(f, sort, descending)
    buf = io.BytesIO()
    with db.connect() as conn, conn.cursor() as cur:
        # COPY takes no parameters: psycopg2 binds them client-side (mogrify), exactly as execute() does.
        bound = cur.mogrify(query, params).decode()
        cur.execute(f"SELECT * FROM ({bound}) q LIMIT 0")
        text = [d.type_code in _TEXT_TYPES for d in cur.description]
        cur.copy_expert(f"COPY ({bound}) TO STDOUT WITH (FORMAT csv, HEADER)", buf)
    return neutralise_csv(buf.getvalue(), text)


_TEXT_TYPES = {25, 1043, 1042, 19}  # text, varchar, bpchar, name (pg_type oids)


# ---------------------------------------------------------------------------------------------- anomalies
SCORING_COLUMNS = (
    "transaction_id",
    "txn_date",
    "account",
    "txn_type",
    "description",
    "amount",
    "category",
    "payment_method",
    "reference",
    "merchant",
)


def period_count(db: Database, period: Period) -> int:
    return int(
        _one(
            db,
            f"SELECT count(*) FROM {TRANSACTIONS} WHERE txn_date BETWEEN %s AND %s",
            (period.start, period.end),
        )[0]
    )


def transactions_to_score(db: Database, period: Period, limit: int) -> pd.DataFrame:
    """The period's transactions in date order (the most recent `limit` when there are more)."""
    cols = ", ".join("amount::float8 AS amount" if c == "amount" else c for c in SCORING_COLUMNS)
    return _frame(
        db,
        f"""
        SELECT * FROM (
            SELECT {cols}, source_file, line_number FROM {TRANSACTIONS}
            WHERE txn_date BETWEEN %s AND %s
            ORDER BY txn_date DESC, source_file DESC, line_number DESC LIMIT %s) t
        ORDER BY txn_date, source_file, line_number""",
        (period.start, period.end, int(limit)),
    )


# ---------------------------------------------------------------------------------------------- cash flow
def daily_flow(db: Database, period: Period) -> pd.DataFrame:
    """metric_date, income, expenses, net per day of the period (days without transactions are 0)."""
    return _frame(
        db,
        f"""
        SELECT metric_date, total_income::float8 AS income, total_expenses::float8 AS expenses,
               net::float8 AS net
        FROM {DAILY} WHERE metric_date BETWEEN %s AND %s ORDER BY metric_date""",
        (period.start, period.end),
    )


# ---------------------------------------------------------------------------------------------- data health
def quarantine(db: Database, limit: int = 200) -> tuple[int, pd.DataFrame]:
    """How many rows are in quarantine, and the latest `limit` of them with their reasons."""
    if not relation_exists(db, "raw.quarantine"):
        return 0, pd.DataFrame(columns=["source_file", "line_number", "reason", "raw_line", "quarantined_at"])
    total = int(_one(db, "SELECT count(*) FROM raw.quarantine")[0])
    rows = _frame(
        db,
        """
        SELECT source_file, line_number, reason, raw_line, quarantined_at FROM raw.quarantine
        ORDER BY quarantined_at DESC, source_file, line_number LIMIT %s""",
        (int(limit),),
    )
    return total, rows
