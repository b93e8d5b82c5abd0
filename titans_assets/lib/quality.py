"""Great Expectations (GX Core 1.x) suites for the raw table and the marts, defined in code.

Plain Python, no Dagster: `definitions` wraps `run_suite` in blocking asset checks. A suite is a
declarative `SuiteSpec` of `ExpectationSpec`s (`raw_transactions_suite`, `fct_transactions_suite`,
`fct_daily_metrics_suite`); only timeliness is non-blocking. Values reach the SQL only through
`render_literal`, which never splices user text. GX is imported lazily.

Design notes (usage, why timeliness warns, parameter rendering): docs/design-notes.md#titans_assetslibqualitypy
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import hashlib
import math
import os
import re
import threading
import time
import uuid
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from titans_assets.lib import settings

# GX reads these when it is imported; nothing here talks to GX's analytics backend.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

DEFAULT_MAX_ABS_AMOUNT = settings.DEFAULT_MAX_ABS_AMOUNT
DEFAULT_MAX_AGE_DAYS = 60
MIN_TXN_DATE = dt.date(1990, 1, 1)
TXN_TYPES = ("Income", "Expense")
SAMPLE_SIZE = 5
CENT_TOLERANCE = "0.005"  # |a - b| >= half a cent means the values differ "to the cent"
# Normalized snake_case labels (category, payment_method, status), exactly what dbt's normalize_label makes
# (lower case, runs of anything but letters and digits -> one underscore): letters as the database
# classifies them, so `Restaurant-Bar & Café` -> `restaurant_bar_café` and `401k Plan` -> `401k_plan` pass.
LABEL_REGEX = r"^[[:lower:][:digit:]]+(_[[:lower:][:digit:]]+)*$"

RAW_TRANSACTIONS = "raw.transactions"
RAW_FILES = "raw.files"
FCT_TRANSACTIONS = "marts.fct_transactions"
FCT_DAILY_METRICS = "marts.fct_daily_metrics"


class Dimension(str, Enum):
    COMPLETENESS = "completeness"
    ACCURACY = "accuracy"
    CONSISTENCY = "consistency"
    VALIDITY = "validity"
    TIMELINESS = "timeliness"


class QualityError(ValueError):
    """A suite is mis-declared or a parameter is missing/unrenderable (a programming error)."""


# --------------------------------------------------------------------------------------------------
# Declarative description


@dataclass(frozen=True)
class Param:
    """A run-time parameter reference inside `ExpectationSpec.kwargs` (resolved by `run_suite`)."""

    name: str


@dataclass(frozen=True)
class ExpectationSpec:
    """One expectation. `gx_type` is a class name from `great_expectations.expectations`
    (or `"UnexpectedRows"` for a SQL query returning the offending rows: pass `query`)."""

    name: str  # stable identifier, unique in its suite (used in metadata keys)
    gx_type: str
    dimension: Dimension
    description: str  # what must hold, in words (used in the one-line summary)
    blocking: bool = True
    column: str | None = None
    kwargs: Mapping[str, Any] = field(default_factory=dict)  # GX kwargs; values may be `Param`
    query: str | None = None  # UnexpectedRows only: must read `{batch}`; `:name` placeholders
    when: tuple[str, Any] | None = None  # row condition: only rows where column == value


@dataclass(frozen=True)
class SuiteSpec:
    name: str
    table: str  # "schema.table", from code only
    expectations: Sequence[ExpectationSpec]
    row_filter: str | None = None  # SQL boolean expression with `:name` placeholders
    params: Mapping[str, Any] = field(default_factory=dict)  # defaults; run_suite(params=) overrides
    # (SQL expectations may use the same :placeholders as row_filter, e.g. :source_files)
    id_columns: Sequence[str] = ()  # identify unexpected rows in samples
    scope: str = "all rows"  # which rows the batch holds, in words (the summary says it)

    def __post_init__(self) -> None:
        _check_table(self.table)
        names = [e.name for e in self.expectations]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise QualityError(f"suite {self.name!r}: duplicate expectation names {dupes}")
        for e in self.expectations:
            if e.gx_type == "UnexpectedRows" and (not e.query or "{batch}" not in e.query):
                raise QualityError(f"{self.name}.{e.name}: an UnexpectedRows query must read {{batch}}")


@dataclass
class ExpectationOutcome:
    name: str
    expectation_type: str  # GX snake_case type, e.g. expect_column_values_to_not_be_null
    column: str | None
    dimension: str
    blocking: bool
    success: bool
    unexpected_count: int | None
    element_count: int | None
    observed_value: Any = None
    sample: list[Any] = field(default_factory=list)
    error: str | None = None
    summary: str = ""


@dataclass
class SuiteResult:
    suite: str
    table: str
    success: bool  # all blocking expectations passed
    element_count: int | None
    duration_s: float
    params: dict[str, Any]
    expectations: list[ExpectationOutcome]
    scope: str = "all rows"

    @property
    def failed_blocking(self) -> list[ExpectationOutcome]:
        return [e for e in self.expectations if e.blocking and not e.success]

    @property
    def warnings(self) -> list[ExpectationOutcome]:
        return [e for e in self.expectations if not e.blocking and not e.success]

    def outcome(self, name: str) -> ExpectationOutcome:
        for e in self.expectations:
            if e.name == name:
                return e
        raise KeyError(name)

    def summary(self) -> str:
        n = len(self.expectations)
        passed = sum(e.success for e in self.expectations)
        head = f"{self.suite} on {self.table} ({self.scope}): {passed}/{n} expectations passed"
        if self.failed_blocking:
            head += "; BLOCKING: " + ", ".join(e.name for e in self.failed_blocking)
        if self.warnings:
            head += "; warnings: " + ", ".join(e.name for e in self.warnings)
        return head

    def to_metadata(self) -> dict[str, Any]:
        """Flat, JSON-able; per-expectation keys only for the ones that failed (keeps the UI short)."""
        md: dict[str, Any] = {
            "suite": self.suite,
            "table": self.table,
            "scope": self.scope,
            "success": self.success,
            "summary": self.summary(),
            "element_count": self.element_count,
            "expectations_evaluated": len(self.expectations),
            "expectations_failed": sum(not e.success for e in self.expectations),
            "failed_blocking": [e.name for e in self.failed_blocking],
            "failed_nonblocking": [e.name for e in self.warnings],
            "duration_s": round(self.duration_s, 3),
            "params": _jsonable(self.params),
        }
        for e in self.expectations:
            if e.success:
                continue
            p = f"failed.{e.name}"
            md[p] = e.summary
            md[f"{p}.dimension"] = e.dimension
            md[f"{p}.blocking"] = e.blocking
            if e.unexpected_count is not None:
                md[f"{p}.unexpected_count"] = e.unexpected_count
            if e.observed_value is not None:
                md[f"{p}.observed_value"] = _jsonable(e.observed_value)
            if e.sample:
                md[f"{p}.sample"] = _jsonable(e.sample)
            if e.error:
                md[f"{p}.error"] = e.error
        return md


# --------------------------------------------------------------------------------------------------
# Expectation helpers (keep the suite definitions below readable)


def not_null(
    column: str,
    *,
    dimension: Dimension = Dimension.COMPLETENESS,
    when=None,
    name=None,
    description=None,
    blocking: bool = True,
) -> ExpectationSpec:
    suffix = f"_when_{when[0]}_{str(when[1]).lower()}" if when else ""
    return ExpectationSpec(
        name=name or f"{column}_not_null{suffix}",
        gx_type="ExpectColumnValuesToNotBeNull",
        dimension=dimension,
        column=column,
        when=when,
        blocking=blocking,
        description=description
        or f"{column} is never null" + (f" where {when[0]} = {when[1]!r}" if when else ""),
    )


def is_null(
    column: str, *, when, dimension: Dimension = Dimension.CONSISTENCY, name=None, blocking: bool = True
) -> ExpectationSpec:
    return ExpectationSpec(
        name=name or f"{column}_null_when_{when[0]}_{str(when[1]).lower()}",
        gx_type="ExpectColumnValuesToBeNull",
        dimension=dimension,
        column=column,
        when=when,
        blocking=blocking,
        description=f"{column} is null where {when[0]} = {when[1]!r}",
    )


def in_set(
    column: str,
    values: Iterable[Any],
    *,
    dimension: Dimension = Dimension.VALIDITY,
    name=None,
    blocking: bool = True,
) -> ExpectationSpec:
    values = list(values)
    return ExpectationSpec(
        name=name or f"{column}_in_set",
        gx_type="ExpectColumnValuesToBeInSet",
        dimension=dimension,
        column=column,
        kwargs={"value_set": values},
        blocking=blocking,
        description=f"{column} is one of {values}",
    )


def matches_regex(
    column: str, regex: str, *, dimension: Dimension = Dimension.VALIDITY, name=None, blocking: bool = True
) -> ExpectationSpec:
    return ExpectationSpec(
        name=name or f"{column}_format",
        gx_type="ExpectColumnValuesToMatchRegex",
        dimension=dimension,
        column=column,
        kwargs={"regex": regex},
        blocking=blocking,
        description=f"{column} (when present) matches {regex}",
    )


def between(
    column: str,
    min_value: Any = None,
    max_value: Any = None,
    *,
    dimension: Dimension,
    name=None,
    description=None,
    blocking: bool = True,
) -> ExpectationSpec:
    kw = {k: v for k, v in (("min_value", min_value), ("max_value", max_value)) if v is not None}
    return ExpectationSpec(
        name=name or f"{column}_in_range",
        gx_type="ExpectColumnValuesToBeBetween",
        dimension=dimension,
        column=column,
        kwargs=kw,
        blocking=blocking,
        description=description
        or (
            f"{column} >= {_show(min_value)}"
            if max_value is None
            else f"{column} <= {_show(max_value)}"
            if min_value is None
            else f"{column} between {_show(min_value)} and {_show(max_value)}"
        ),
    )


def unique(
    columns: str | Sequence[str],
    *,
    dimension: Dimension = Dimension.CONSISTENCY,
    name=None,
    blocking: bool = True,
    against: str | None = None,
) -> ExpectationSpec:
    """No two rows share `columns`; rows where all of them are null are left out and every row of a
    repeated key counts as unexpected, as in GX's uniqueness expectations. One GROUP BY, not GX's
    ExpectColumnValuesToBeUnique: 0.7 s against 2.1-4.7 s on 1M rows (docs/benchmarks.md).

    `against` (a table): the batch is a slice of it, and a batch row's key must be unique in the whole
    table (the rows of `against` that share a key with the batch are grouped)."""
    cols = [columns] if isinstance(columns, str) else list(columns)
    keys = ", ".join(cols)
    present = " OR ".join(f"{c} IS NOT NULL" for c in cols)
    if against is None:
        rows = f"SELECT {keys} FROM {{batch}} AS t WHERE {present}"
    else:
        _check_table(against)
        rows = (
            f"SELECT {keys} FROM {against} AS t WHERE ({keys}) IN "
            f"(SELECT {keys} FROM {{batch}} AS s WHERE {present})"
        )
    query = f"""
WITH b AS ({rows}),
     d AS (SELECT {keys} FROM b GROUP BY {keys} HAVING count(*) > 1)
SELECT {keys} FROM b JOIN d USING ({keys})
"""
    return no_rows(
        name or "_".join(cols) + "_unique",
        query,
        f"no two rows share {cols[0] if len(cols) == 1 else '(' + ', '.join(cols) + ')'}",
        dimension=dimension,
        blocking=blocking,
        column=cols[0] if len(cols) == 1 else None,
    )


def fresh(column: str, *, name=None) -> ExpectationSpec:
    """Timeliness: the newest `column` is on or after today - max_age_days. Never blocking (see module doc)."""
    return ExpectationSpec(
        name=name or f"{column}_fresh",
        gx_type="ExpectColumnMaxToBeBetween",
        dimension=Dimension.TIMELINESS,
        column=column,
        kwargs={"min_value": Param("oldest_fresh_date")},
        blocking=False,
        description=f"newest {column} is at most max_age_days old",
    )


def no_rows(
    name: str,
    query: str,
    description: str,
    *,
    dimension: Dimension,
    blocking: bool = True,
    column: str | None = None,
) -> ExpectationSpec:
    """The query (reading `{batch}`) selects the offending rows; the expectation passes when it returns none.

    GX's aliasing rule for `{batch}`: if the query contains the word JOIN, write `{batch} AS alias`
    (GX inserts a bare parenthesized subquery); otherwise write a bare `{batch}` (GX adds
    `AS subselect`). Literal braces must be doubled; parameters are `:name` (see `render_sql`)."""
    return ExpectationSpec(
        name=name,
        gx_type="UnexpectedRows",
        dimension=dimension,
        query=query,
        description=description,
        blocking=blocking,
        column=column,
    )


# --------------------------------------------------------------------------------------------------
# The suites


def _common_transaction_checks(id_columns: Sequence[str]) -> list[ExpectationSpec]:
    sign_rule = f"""
SELECT {", ".join(id_columns)}, txn_type, amount FROM {{batch}}
WHERE (txn_type = 'Expense' AND amount > 0) OR (txn_type = 'Income' AND amount < 0)
"""
    return [
        in_set("txn_type", TXN_TYPES),
        between(
            "txn_date",
            Param("min_txn_date"),
            Param("tomorrow"),
            dimension=Dimension.ACCURACY,
            description="txn_date between min_txn_date (1990-01-01) and today + 1 day",
        ),
        no_rows(
            "amount_sign_matches_type",
            sign_rule,
            "expenses are <= 0 and income is >= 0",
            dimension=Dimension.VALIDITY,
            column="amount",
        ),
        between(
            "amount",
            Param("neg_max_abs_amount"),
            Param("max_abs_amount"),
            dimension=Dimension.VALIDITY,
            name="amount_within_max",
            description="|amount| <= max_abs_amount",
        ),
    ]


def raw_transactions_suite(
    source_files: Sequence[str] | None = None,
    *,
    max_abs_amount: float = DEFAULT_MAX_ABS_AMOUNT,
    max_age_days: int = DEFAULT_MAX_AGE_DAYS,
    table: str = RAW_TRANSACTIONS,
    files_table: str = RAW_FILES,
) -> SuiteSpec:
    """The landed rows, optionally only those of `source_files` (the checks run per loaded file).

    raw.transactions has no primary or foreign key (they slowed COPY down 2.5x), so this suite is
    what guarantees (source_file, line_number) is unique and every row belongs to a registered file
    whose `rows_loaded` matches the rows present."""
    _check_table(files_table)
    scope = "" if source_files is None else "WHERE source_file = ANY(:source_files)"
    orphan = f"""
SELECT source_file, line_number FROM {{batch}}
WHERE source_file NOT IN (SELECT source_file FROM {files_table})
"""
    counts = f"""
WITH b AS (SELECT source_file, count(*) AS n FROM {{batch}} AS t GROUP BY source_file),
     f AS (SELECT source_file, rows_loaded FROM {files_table} {scope})
SELECT f.source_file, f.rows_loaded, coalesce(b.n, 0) AS rows_present
FROM f LEFT JOIN b ON b.source_file = f.source_file
WHERE f.rows_loaded <> coalesce(b.n, 0)
"""
    return SuiteSpec(
        name="raw_transactions",
        table=table,
        row_filter=None if source_files is None else "source_file = ANY(:source_files)",
        params={
            "max_abs_amount": max_abs_amount,
            "max_age_days": max_age_days,
            **({} if source_files is None else {"source_files": list(source_files)}),
        },
        id_columns=("source_file", "line_number"),
        expectations=[
            *(not_null(c) for c in ("txn_date", "txn_type", "description", "amount", "account")),
            *_common_transaction_checks(("source_file", "line_number")),
            unique(("source_file", "line_number")),
            no_rows(
                "source_file_registered",
                orphan,
                f"every row's source_file is registered in {files_table}",
                dimension=Dimension.CONSISTENCY,
                column="source_file",
            ),
            no_rows(
                "rows_loaded_matches",
                counts,
                f"each file's {files_table}.rows_loaded equals its rows present",
                dimension=Dimension.CONSISTENCY,
            ),
            fresh("txn_date"),
        ],
    )


def fct_transactions_suite(
    *,
    max_abs_amount: float = DEFAULT_MAX_ABS_AMOUNT,
    max_age_days: int = DEFAULT_MAX_AGE_DAYS,
    table: str = FCT_TRANSACTIONS,
    changed: str | None = None,
) -> SuiteSpec:
    """The marts' transactions; `changed` (a table of the transaction ids an incremental build replaced,
    side 'new': lib/incremental.CHANGES_TABLE) narrows the batch to those rows, rows without an id and
    the newest day's: every expectation is row-local but two, and those two stay exact: uniqueness
    compares the batch's ids with the whole table, and the newest day's rows carry the table's newest
    date (freshness).
    Exact only when every other row passed before (lib/incremental.check_scope decides)."""
    required = (
        "transaction_id",
        "account",
        "source_file",
        "line_number",
        "txn_date",
        "txn_type",
        "description",
        "amount",
        "abs_amount",
        "month",
    )
    if changed is not None:
        _check_table(changed)
    return SuiteSpec(
        name="fct_transactions",
        table=table,
        params={"max_abs_amount": max_abs_amount, "max_age_days": max_age_days},
        id_columns=("transaction_id",),
        # `= ANY(ARRAY(...))` and a scalar subquery, each evaluated once, then index scans; a row
        # without an id is no replaced row's, but the not-null expectation must see it
        row_filter=None
        if changed is None
        else f"transaction_id = ANY(ARRAY(SELECT transaction_id FROM {changed} WHERE side = 'new'))"
        f" OR transaction_id IS NULL OR txn_date = (SELECT max(txn_date) FROM {table})",
        scope="all rows"
        if changed is None
        else "the rows the incremental build replaced, rows without an id, and the newest day",
        expectations=[
            *(not_null(c) for c in required),
            # Bank statements (OFX, CAMT.053, MT940, most CSVs) carry no category: an uncategorised
            # expense is a gap for the model and the user's rules to fill, not bad data, so a warning.
            # A transfer between the user's own accounts (is_transfer) is no expense: it needs none.
            no_rows(
                "category_not_null_when_txn_type_expense",
                "SELECT transaction_id, txn_type, category FROM {batch} "
                "WHERE txn_type = 'Expense' AND category IS NULL AND NOT coalesce(is_transfer, false)",
                "category is never null where txn_type = 'Expense' (transfers between own accounts aside)",
                dimension=Dimension.COMPLETENESS,
                blocking=False,
                column="category",
            ),
            unique("transaction_id", against=None if changed is None else table),
            # The seed ledger leaves income uncategorised; real exports (Mint's `Paycheck`) label it: a warning.
            is_null("category", when=("txn_type", "Income"), blocking=False),
            *_common_transaction_checks(("transaction_id",)),
            *(matches_regex(c, LABEL_REGEX) for c in ("category", "payment_method", "status")),
            no_rows(
                "abs_amount_is_abs_of_amount",
                "SELECT transaction_id, amount, abs_amount FROM {batch} WHERE abs_amount <> abs(amount)",
                "abs_amount = |amount|",
                dimension=Dimension.CONSISTENCY,
                column="abs_amount",
            ),
            fresh("txn_date"),
        ],
    )


# The daily metrics' SQL checks ({batch}: the table under test).
_DAILY_GAPS = """
WITH b AS (SELECT metric_date FROM {batch}),
     s AS (SELECT CAST(g AS date) AS metric_date
           FROM generate_series((SELECT min(metric_date) FROM b), (SELECT max(metric_date) FROM b), interval '1 day') AS g)
SELECT s.metric_date AS missing_day FROM s WHERE NOT EXISTS (SELECT 1 FROM b WHERE b.metric_date = s.metric_date)
"""
_DAILY_NET = f"""
SELECT metric_date, total_income, total_expenses, net FROM {{batch}}
WHERE abs(net - (total_income - total_expenses)) >= {CENT_TOLERANCE}
"""
_DAILY_RUNNING = f"""
WITH r AS (
    SELECT metric_date, net, running_balance, sum(net) OVER (ORDER BY metric_date) AS expected_running_balance
    FROM {{batch}}
)
SELECT * FROM r WHERE abs(running_balance - expected_running_balance) >= {CENT_TOLERANCE}
"""


def _daily_reconcile(transactions_table: str) -> str:
    """Days whose income, expenses or count differ from `transactions_table`'s, to the cent."""
    tol = CENT_TOLERANCE
    return f"""
WITH f AS (
    -- transfers between the user's own accounts count in neither; amounts in the reporting currency
    SELECT txn_date AS metric_date,
           coalesce(sum(abs(coalesce(amount_reporting, amount))) FILTER (WHERE txn_type = 'Income'), 0) AS income,
           coalesce(sum(abs(coalesce(amount_reporting, amount))) FILTER (WHERE txn_type = 'Expense'), 0) AS expenses,
           count(*) AS n
    FROM {transactions_table}
    WHERE NOT coalesce(is_transfer, false)
    GROUP BY txn_date
)
SELECT coalesce(d.metric_date, f.metric_date) AS metric_date,
       d.total_income, f.income AS expected_income,
       d.total_expenses, f.expenses AS expected_expenses,
       d.transaction_count, f.n AS expected_count
FROM {{batch}} AS d
FULL OUTER JOIN f ON f.metric_date = d.metric_date
WHERE d.metric_date IS NULL
   OR abs(coalesce(d.total_income, 0) - coalesce(f.income, 0)) >= {tol}
   OR abs(coalesce(d.total_expenses, 0) - coalesce(f.expenses, 0)) >= {tol}
   OR coalesce(d.transaction_count, 0) <> coalesce(f.n, 0)
"""


def fct_daily_metrics_suite(
    *,
    max_age_days: int = DEFAULT_MAX_AGE_DAYS,
    table: str = FCT_DAILY_METRICS,
    transactions_table: str = FCT_TRANSACTIONS,
) -> SuiteSpec:
    _check_table(transactions_table)
    cols = (
        "metric_date",
        "total_income",
        "total_expenses",
        "net",
        "transaction_count",
        "unique_categories",
        "running_balance",
    )
    return SuiteSpec(
        name="fct_daily_metrics",
        table=table,
        params={"max_age_days": max_age_days},
        id_columns=("metric_date",),
        expectations=[
            *(not_null(c) for c in cols),
            unique("metric_date"),
            no_rows(
                "every_day_present",
                _DAILY_GAPS,
                "every day between the first and last day has a row",
                dimension=Dimension.COMPLETENESS,
                column="metric_date",
            ),
            no_rows(
                "reconciles_with_fct_transactions",
                _daily_reconcile(transactions_table),
                f"daily income, expenses and counts equal {transactions_table} to the cent",
                dimension=Dimension.CONSISTENCY,
            ),
            no_rows(
                "net_is_income_minus_expenses",
                _DAILY_NET,
                "net = total_income - total_expenses",
                dimension=Dimension.CONSISTENCY,
                column="net",
            ),
            no_rows(
                "running_balance_is_cumulative_net",
                _DAILY_RUNNING,
                "running_balance = cumulative sum of net",
                dimension=Dimension.CONSISTENCY,
                column="running_balance",
            ),
            *(
                between(c, 0, dimension=Dimension.VALIDITY, name=f"{c}_non_negative", description=f"{c} >= 0")
                for c in ("transaction_count", "total_income", "total_expenses", "unique_categories")
            ),
            fresh("metric_date"),
        ],
    )


# --------------------------------------------------------------------------------------------------
# SQL rendering (see module docstring for why values are rendered, and how safely)

_IDENT = re.compile(r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$")
# Same shape SQLAlchemy's text() uses: `:name`, but not `::cast` and not `x:y` inside a word.
_PLACEHOLDER = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")


def _check_table(table: str) -> None:
    if not _IDENT.match(table):
        raise QualityError(f"table must be a lower-case 'schema.table' identifier, got {table!r}")


_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 /._-")


def _unicode_escape(c: str) -> str:
    return f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}"


def render_literal(value: Any) -> str:
    """A PostgreSQL literal for `value` in which no user character can end the literal or be re-read by
    GX as a placeholder: text keeps only [A-Za-z0-9 /._-] as is, everything else becomes a \\uXXXX escape
    in an E'' string (a constant the planner folds, unlike a function call)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise QualityError(f"cannot render non-finite number {value!r}")
        return repr(value)
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise QualityError(f"cannot render non-finite number {value!r}")
        return format(value, "f")
    if isinstance(value, dt.datetime):
        raise QualityError("datetime parameters are not supported; pass a date")
    if isinstance(value, dt.date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, str):
        if "\x00" in value:
            raise QualityError("text parameters cannot contain NUL")
        return "E'" + "".join(c if c in _PLAIN else _unicode_escape(c) for c in value) + "'"
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else list(value)
        if not items:
            return "CAST(ARRAY[] AS text[])"
        return "ARRAY[" + ", ".join(render_literal(v) for v in items) + "]"
    raise QualityError(f"cannot render a parameter of type {type(value).__name__}")


def render_sql(sql: str, params: Mapping[str, Any]) -> str:
    def sub(m: re.Match[str]) -> str:
        key = m.group(1)
        if key not in params:
            raise QualityError(f"SQL placeholder :{key} has no value (known: {sorted(params)})")
        return render_literal(params[key])

    return _PLACEHOLDER.sub(sub, sql)


def resolve_params(
    spec: SuiteSpec, params: Mapping[str, Any] | None, today: dt.date | None
) -> dict[str, Any]:
    p: dict[str, Any] = {
        "max_abs_amount": DEFAULT_MAX_ABS_AMOUNT,
        "max_age_days": DEFAULT_MAX_AGE_DAYS,
        "min_txn_date": MIN_TXN_DATE,
        **spec.params,
        **(params or {}),
    }
    today = today or dt.date.today()
    if isinstance(today, dt.datetime):
        today = today.date()
    p["today"] = today
    p["tomorrow"] = today + dt.timedelta(days=1)
    p["oldest_fresh_date"] = today - dt.timedelta(days=int(p["max_age_days"]))
    p["neg_max_abs_amount"] = -p["max_abs_amount"]
    return p


# Parameters that follow today: they leave a suite's definition (`definition`) and move by themselves.
DATE_PARAMS = ("today", "tomorrow", "oldest_fresh_date")


def definition(spec: SuiteSpec, params: Mapping[str, Any] | None = None) -> str:
    """sha256 of what decides each row's verdict: the table, the expectations and the resolved
    parameters but the dates (lib/incremental.check_scope compares it between runs)."""
    p = resolve_params(spec, params, MIN_TXN_DATE)
    fixed = sorted((k, repr(v)) for k, v in p.items() if k not in DATE_PARAMS)
    return hashlib.sha256(repr((spec.table, list(spec.expectations), fixed)).encode()).hexdigest()


# --------------------------------------------------------------------------------------------------
# Running with GX

_lock = threading.RLock()
_contexts: dict[str, tuple[Any, Any]] = {}  # sqlalchemy url -> (ephemeral context, SQL datasource)


def _gx():
    import great_expectations as gx

    return gx


def _context_for(url: str) -> tuple[Any, Any]:
    """One ephemeral context + SQL datasource per URL per process (the engine and its pool are reused)."""
    hit = _contexts.get(url)
    if hit is not None:
        return hit
    gx = _gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    # add_sql, not add_postgres: add_postgres rejects a Unix-socket URL (no host) as invalid.
    # pool_pre_ping: the engine outlives a single run, and the server may have restarted in between.
    try:
        with warnings.catch_warnings():  # "a more specific PostgresDatasource may be more appropriate"
            warnings.simplefilter("ignore")
            ds = ctx.data_sources.add_sql(
                name=f"titans_{uuid.uuid4().hex[:8]}", connection_string=url, kwargs={"pool_pre_ping": True}
            )
    except Exception as exc:  # noqa: BLE001 - GX raises TestConnectionError wrapping the driver's error
        from sqlalchemy.engine import make_url

        from titans_assets.lib.db import DatabaseError

        where = make_url(url).render_as_string(hide_password=True)
        text = str(exc.__cause__ or exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        raise DatabaseError(f"E001 cannot connect to {where}: {first}") from None
    _contexts[url] = (ctx, ds)
    return ctx, ds


def reset_gx_cache() -> None:
    """Dispose cached GX engines (closes pooled connections, e.g. before DROP DATABASE)."""
    with _lock:
        for _ctx, ds in _contexts.values():
            with contextlib.suppress(Exception):  # best effort: the engine may never have connected
                ds.get_execution_engine().engine.dispose()
        _contexts.clear()


def _build_expectation(e: ExpectationSpec, params: Mapping[str, Any]):
    import great_expectations.expectations as gxe

    meta = {"titans_name": e.name}
    if e.gx_type == "UnexpectedRows":
        return _sampling_unexpected_rows_class()(
            unexpected_rows_query=render_sql(e.query or "", params), description=e.description, meta=meta
        )
    cls = getattr(gxe, e.gx_type, None)
    if cls is None:
        raise QualityError(f"{e.name}: unknown GX expectation {e.gx_type!r}")
    missing = [v.name for v in e.kwargs.values() if isinstance(v, Param) and v.name not in params]
    if missing:
        raise QualityError(f"{e.name}: missing parameters {missing}")
    kwargs = {k: (params[v.name] if isinstance(v, Param) else v) for k, v in e.kwargs.items()}
    if e.column is not None:
        kwargs["column"] = e.column
    if e.when is not None:
        from great_expectations.expectations.row_conditions import Column

        kwargs["row_condition"] = Column(e.when[0]) == e.when[1]
    return cls(meta=meta, **kwargs)


_SAMPLING_CLS = None


def _sampling_unexpected_rows_class():
    """UnexpectedRowsExpectation that also returns a few offending rows at SUMMARY result format.

    The stock class only returns rows at COMPLETE, and COMPLETE would make every column expectation
    return its full unexpected list. The rows (up to 200) are fetched by GX anyway."""
    global _SAMPLING_CLS
    if _SAMPLING_CLS is None:
        gxe = __import__("great_expectations.expectations", fromlist=["UnexpectedRowsExpectation"])

        class TitansUnexpectedRowsExpectation(gxe.UnexpectedRowsExpectation):
            def _validate(self, metrics, runtime_configuration=None, execution_engine=None):
                out = super()._validate(metrics, runtime_configuration, execution_engine)
                if isinstance(out, dict) and "result" in out:
                    rows = metrics.get("unexpected_rows_query.table") or []
                    out["result"].setdefault("details", {})["sample_rows"] = list(rows[:SAMPLE_SIZE])
                return out

        _SAMPLING_CLS = TitansUnexpectedRowsExpectation
    return _SAMPLING_CLS


def run_suite(
    spec: SuiteSpec,
    sqlalchemy_url: str,
    *,
    params: Mapping[str, Any] | None = None,
    today: dt.date | None = None,
) -> SuiteResult:
    """Validate `spec` against the database at `sqlalchemy_url` (postgresql+psycopg2://, TCP or socket).

    `params` override `spec.params` (e.g. max_age_days, source_files); `today` (default: the local
    date) anchors the date range and the freshness check. Raises only for mis-declared suites or an
    unreachable database; a failing expectation (including one GX could not evaluate, e.g. a missing
    column) is reported in the result.
    """
    started = time.perf_counter()
    p = resolve_params(spec, params, today)
    # Pass/fail first: GX's SUMMARY format also fetches each expectation's sample of unexpected values,
    # one more scan per expectation even when nothing is unexpected (1M rows: fct_transactions 9.7-11.1 s
    # at SUMMARY, 3.7-4.6 s pass/fail only). Then SUMMARY for the ones that failed (their counts and
    # samples), the ones whose observed value is reported even on a pass (the newest date), and the
    # batch's row count. A pass means no unexpected row unless the expectation allows some (`mostly`).
    quick = _validate(spec, p, sqlalchemy_url, spec.expectations, {"result_format": "BOOLEAN_ONLY"})
    passed = {name for name, r in quick.items() if r.success and _exception_message(r.exception_info) is None}
    detail = [
        e for e in spec.expectations if e.name not in passed or e.gx_type in _OBSERVED or "mostly" in e.kwargs
    ]
    result_format: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": SAMPLE_SIZE}
    if spec.id_columns:
        result_format["unexpected_index_column_names"] = list(spec.id_columns)
        result_format["return_unexpected_index_query"] = False
    full = _validate(spec, p, sqlalchemy_url, detail, result_format, count_rows=True)
    counted = full.pop(_ROW_COUNT, None)
    element_count = (getattr(counted, "result", None) or {}).get("observed_value")
    outcomes = _outcomes(spec, p, full, passed, element_count)
    for o in outcomes:
        o.summary = _summary_line(o, next(e for e in spec.expectations if e.name == o.name), p)
    return SuiteResult(
        suite=spec.name,
        table=spec.table,
        success=all(o.success for o in outcomes if o.blocking),
        element_count=element_count,
        duration_s=time.perf_counter() - started,
        params={k: v for k, v in p.items() if k in spec.params or k in (params or {}) or k == "today"},
        expectations=outcomes,
        scope=spec.scope,
    )


# Expectations whose observed value is reported on a pass too (the freshness check's newest date).
_OBSERVED = {"ExpectColumnMaxToBeBetween"}
_ROW_COUNT = "_titans_row_count"


def _validate(
    spec: SuiteSpec,
    p: Mapping[str, Any],
    sqlalchemy_url: str,
    expectations: Sequence[ExpectationSpec],
    result_format: Mapping[str, Any],
    count_rows: bool = False,
) -> dict[str, Any]:
    """GX's result per expectation name for `expectations` of `spec` on its batch (with the batch's
    row count under _ROW_COUNT when `count_rows`)."""
    gx = _gx()
    built = [_build_expectation(e, p) for e in expectations]
    if count_rows:
        count = gx.expectations.ExpectTableRowCountToBeBetween(min_value=0, meta={"titans_name": _ROW_COUNT})
        built.append(count)
    if not built:
        return {}
    with _lock:
        ctx, ds = _context_for(sqlalchemy_url)
        tag = f"{spec.name}_{uuid.uuid4().hex[:12]}"
        if spec.row_filter:
            # A query asset costs one extra pass: GX runs the bare query once to learn its column names.
            query = f"SELECT * FROM {spec.table} WHERE ({render_sql(spec.row_filter, p)})"
            asset = ds.add_query_asset(name=tag, query=query)
        else:
            schema, table = spec.table.split(".")
            with warnings.catch_warnings():  # schema_name is deprecated (GX 1.14) for one schema per
                warnings.simplefilter("ignore", DeprecationWarning)  # datasource; we read several schemas
                asset = ds.add_table_asset(name=tag, table_name=table, schema_name=schema)
        try:
            batch_def = asset.add_batch_definition_whole_table(tag)
            suite = ctx.suites.add(gx.ExpectationSuite(name=tag, expectations=built))
            vd = ctx.validation_definitions.add(
                gx.ValidationDefinition(name=tag, data=batch_def, suite=suite)
            )
            gx_result = vd.run(result_format=dict(result_format))
        finally:
            _cleanup(ctx, ds, tag)
    return {(r.expectation_config.meta or {}).get("titans_name"): r for r in gx_result.results}


def _cleanup(ctx: Any, ds: Any, tag: str) -> None:
    for delete in (
        lambda: ctx.validation_definitions.delete(tag),
        lambda: ctx.suites.delete(tag),
        lambda: ds.delete_asset(tag),
    ):
        with contextlib.suppress(Exception):  # nothing to delete if the run failed before creating it
            delete()
    store = ctx.validation_results_store  # in-memory: drop results so a long-lived process stays small
    for key in store.list_keys():
        store.remove_key(key)


def _outcomes(
    spec: SuiteSpec,
    p: Mapping[str, Any],
    by_name: Mapping[str, Any],
    passed: set[str],
    element_count: int | None,
) -> list[ExpectationOutcome]:
    """One outcome per expectation of `spec`: from its SUMMARY result (`by_name`) when it has one, else
    a pass (`passed`: no unexpected row)."""
    out = []
    for e in spec.expectations:
        r = by_name.get(e.name)
        if r is None and e.name in passed:
            out.append(
                ExpectationOutcome(
                    name=e.name,
                    expectation_type=_build_expectation(e, p).expectation_type,
                    column=e.column,
                    dimension=e.dimension.value,
                    blocking=e.blocking,
                    success=True,
                    unexpected_count=0,
                    element_count=None,  # the batch's, below
                )
            )
            continue
        if r is None:
            out.append(
                ExpectationOutcome(
                    e.name,
                    _build_expectation(e, p).expectation_type,
                    e.column,
                    e.dimension.value,
                    e.blocking,
                    False,
                    None,
                    None,
                    error="no result returned by GX",
                )
            )
            continue
        res = r.result or {}
        error = _exception_message(r.exception_info)
        if e.gx_type == "UnexpectedRows":
            unexpected = res.get("observed_value")
            sample = (res.get("details") or {}).get("sample_rows") or []
            observed = None
        else:
            unexpected = res.get("unexpected_count")
            sample = res.get("partial_unexpected_index_list") or res.get("partial_unexpected_list") or []
            observed = res.get("observed_value")
        out.append(
            ExpectationOutcome(
                name=e.name,
                expectation_type=r.expectation_config.type,
                column=e.column,
                dimension=e.dimension.value,
                blocking=e.blocking,
                success=bool(r.success) and error is None,
                unexpected_count=None if unexpected is None else int(unexpected),
                element_count=res.get("element_count"),
                observed_value=observed,
                sample=_jsonable(list(sample)[:SAMPLE_SIZE]),
                error=error,
            )
        )
    for o in out:  # batch-level expectations: report the batch size next to their count
        if o.element_count is None and o.unexpected_count is not None:
            o.element_count = element_count
    return out


def _exception_message(info: Any) -> str | None:
    """GX 1.x puts either {raised_exception, exception_message} or {metric id: that dict} here."""
    if not isinstance(info, Mapping):
        return None
    candidates = [info] + [v for v in info.values() if isinstance(v, Mapping)]
    for c in candidates:
        if c.get("raised_exception"):
            lines = str(c.get("exception_message") or "GX raised an exception").strip().splitlines()
            return lines[0][:500] if lines else "GX raised an exception"
    return None


def _summary_line(o: ExpectationOutcome, e: ExpectationSpec, p: Mapping[str, Any]) -> str:
    status = "passed" if o.success else ("FAILED" if o.blocking else "WARNING")
    text = f"{status} {o.name} [{o.dimension}{'' if o.blocking else ', non-blocking'}]: {e.description}"
    if e.gx_type == "ExpectColumnMaxToBeBetween":
        newest = "no rows" if o.observed_value is None else f"newest {_show(o.observed_value)}"
        text += f" ({newest}, must be >= {_show(p.get('oldest_fresh_date'))})"
    elif o.unexpected_count is not None and (o.unexpected_count or not o.success):
        of = f" of {o.element_count}" if o.element_count is not None else ""
        text += f" ({o.unexpected_count}{of} rows unexpected)"
    if o.error:
        text += f" (error: {o.error})"
    return text


def _show(v: Any) -> str:
    return v.name if isinstance(v, Param) else str(_jsonable(v))


def _jsonable(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else str(v)
    if isinstance(v, decimal.Decimal):
        return float(v) if v.is_finite() else str(v)
    if isinstance(v, (dt.date, dt.datetime, dt.time)):
        return v.isoformat()
    if isinstance(v, Enum):
        return v.value
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, set, frozenset)):
        return [_jsonable(x) for x in v]
    return str(v)
