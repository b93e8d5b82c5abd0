"""The ML feature tables (dbt_project/models/features) on a real PostgreSQL, after a real `dbt build`.

- the transaction feature table has >= 50 documented feature columns in four groups;
- hand-computed values on a tiny ledger (windows, merchant recurrence, frequency encodings, z-score,
  percentile, daily lags and rolling means) and every day in ml_daily_cashflow;
- POINT IN TIME: adding a later transaction changes no earlier row, while the new row sees its past;
- a pandas reference implementation agrees with the SQL on a random ledger (exact features exactly,
  histogram-approximated ones within one histogram bin).

Runs on the embedded server, and on the external one too when TITANS_TEST_EXTERNAL_URL is set.
"""

from __future__ import annotations

import math
import os
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from conftest import scratch_database
from test_dbt_project import PROJECT_DIR, RAW_SCHEMA_SQL, _dbt, _query

pytestmark = pytest.mark.integration

FEATURES_YML = PROJECT_DIR / "models" / "features" / "_features.yml"
IDENTIFYING = {
    "transaction_id",
    "txn_date",
    "account",
    "source_file",
    "line_number",
    "txn_type",
    "description",
    "reference",
    "merchant",
    "payment_method",
    "category",
    "amount",
}
GROUPS = {"time", "amount", "categorical", "behavioral"}
FEATURE_MODELS = ("ml_calendar_features", "ml_transaction_features", "ml_daily_cashflow")
LOADED_AT = datetime(2024, 4, 1, 9, 0, tzinfo=UTC)

CHECKING, SAVINGS = "checking.csv", "savings.csv"
# (line, date, type, description, amount, category, payment_method, reference)
# fmt: off
LEDGER = {
    CHECKING: [
        (2, "2024-03-01", "Expense", "Coffee", "-5.00", "meals_entertainment", "credit_card", "Cafe"),
        (3, "2024-03-01", "Expense", "Coffee", "-5.00", "meals_entertainment", "credit_card", "Cafe"),
        (4, "2024-03-04", "Expense", "GitHub subscription", "-20.00", "software", "debit_card", "GitHub"),
        (5, "2024-03-08", "Expense", "Coffee", "-7.00", "meals_entertainment", "debit_card", "Cafe"),
        (6, "2024-03-15", "Income", "Salary March", "1000.00", "", "bank_transfer", "ACME"),
        (7, "2024-03-20", "Expense", "Coffee", "-6.00", "meals_entertainment", "credit_card", "Cafe"),
    ],
    # the same merchant in another account: a different history
    SAVINGS: [
        (2, "2024-03-04", "Expense", "Coffee", "-100.00", "meals_entertainment", "credit_card", "Cafe"),
    ],
}
# fmt: on
FIRST_DAY, LAST_DAY = date(2024, 3, 1), date(2024, 3, 20)


def load_ledger(db, ledger: dict[str, list[tuple]]) -> None:
    """Raw schema plus one raw.files row per file and its rows in raw.transactions (as the loader would)."""
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(RAW_SCHEMA_SQL.read_text())
        for source_file, rows in ledger.items():
            cur.execute(
                "INSERT INTO raw.files (source_file, account, size_bytes, sha256, rows_read, rows_loaded,"
                " rows_quarantined, header, loaded_at) VALUES (%s, %s, 1000, %s, %s, %s, 0, %s, %s)",
                (
                    source_file,
                    Path(source_file).stem,
                    source_file.encode().hex(),
                    len(rows),
                    len(rows),
                    ["Date", "Type", "Description", "Amount"],
                    LOADED_AT,
                ),
            )
            insert_rows(cur, source_file, rows)


def insert_rows(cur, source_file: str, rows: list[tuple]) -> None:
    cur.executemany(
        "INSERT INTO raw.transactions (source_file, line_number, account, txn_date, txn_type, description,"
        " amount, category, payment_method, status, reference, loaded_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 'paid', %s, %s)",
        [
            (
                source_file,
                line,
                Path(source_file).stem,
                d,
                typ,
                desc,
                Decimal(amount),
                cat,
                pm,
                ref,
                LOADED_AT,
            )
            for line, d, typ, desc, amount, cat, pm, ref in rows
        ],
    )


def build(db, target: Path, *extra: str) -> tuple[int, dict[str, str], str]:
    """The whole `dbt build` (a selection would still run tests of unselected models, e.g. the
    fct_transactions -> dim_files relationship)."""
    return _dbt(["build", *extra], os.environ | db.dbt_env(), target)


def models_built(statuses: dict[str, str]) -> bool:
    """The feature tables were built (their dbt tests are judged by the first test below; the
    others check values themselves)."""
    return all(statuses.get(f"model.titans.{m}") == "success" for m in FEATURE_MODELS)


def features(db) -> dict[tuple[str, int], dict]:
    """ml_transaction_features by (source_file, line_number)."""
    rows = _query(db, "select * from features.ml_transaction_features")
    return {(r["source_file"], r["line_number"]): r for r in rows}


def daily(db) -> dict[date, dict]:
    return {r["metric_date"]: r for r in _query(db, "select * from features.ml_daily_cashflow")}


def assert_same(before: dict, after: dict, what: str) -> None:
    for column, value in before.items():
        other = after[column]
        if isinstance(value, float) and isinstance(other, float):
            assert math.isclose(value, other, rel_tol=1e-12, abs_tol=1e-12), (what, column, value, other)
        else:
            assert value == other, (what, column, value, other)


@pytest.fixture(scope="module")
def built(any_db, tmp_path_factory):
    """The tiny ledger above in a scratch database, after one build; a snapshot of the feature tables."""
    with scratch_database(any_db) as db:
        load_ledger(db, LEDGER)
        target = tmp_path_factory.mktemp("dbt_features") / "target"
        code, statuses, output = build(db, target)
        snapshot = {}
        if models_built(statuses):  # what the tests below read (one of them changes the database)
            snapshot = {
                "features": features(db),
                "daily": daily(db),
                "fct_ids": [
                    r["transaction_id"]
                    for r in _query(db, "select transaction_id from marts.fct_transactions")
                ],
                "metric_days": [
                    r["metric_date"] for r in _query(db, "select metric_date from marts.fct_daily_metrics")
                ],
            }
        yield {"db": db, "target": target, "code": code, "statuses": statuses, "output": output, **snapshot}


def test_build_succeeds_and_every_feature_test_passes(built):
    assert built["code"] == 0, built["output"]
    statuses = built["statuses"]
    assert models_built(statuses)
    tests = {k: v for k, v in statuses.items() if k.startswith("test.")}
    assert {v for v in tests.values()} == {"pass"}, {k: v for k, v in tests.items() if v != "pass"}
    for name in (
        "features_transaction_rows_match_fct",
        "features_transaction_values_valid",
        "features_daily_cashflow_matches_daily_metrics",
    ):
        assert statuses[f"test.titans.{name}"] == "pass"


def test_at_least_50_feature_columns_all_documented_in_four_groups(built):
    columns = [
        r["column_name"]
        for r in _query(
            built["db"],
            "select column_name from information_schema.columns"
            " where table_schema = 'features' and table_name = 'ml_transaction_features'"
            " order by ordinal_position",
        )
    ]
    assert IDENTIFYING <= set(columns)
    feature_columns = [c for c in columns if c not in IDENTIFYING]
    assert len(feature_columns) >= 50, feature_columns

    models = {m["name"]: m for m in yaml.safe_load(FEATURES_YML.read_text())["models"]}
    documented = {c["name"]: c for c in models["ml_transaction_features"]["columns"]}
    assert list(documented) == columns  # every column documented, in table order
    groups = {name: documented[name]["config"]["meta"]["group"] for name in feature_columns}
    assert set(groups.values()) == GROUPS
    assert all(documented[name]["description"] for name in columns)
    daily_columns = {
        r["column_name"]
        for r in _query(
            built["db"],
            "select column_name from information_schema.columns"
            " where table_schema = 'features' and table_name = 'ml_daily_cashflow'",
        )
    }
    assert daily_columns == {c["name"] for c in models["ml_daily_cashflow"]["columns"]}


def test_one_row_per_transaction(built):
    rows = built["features"]
    assert sorted(r["transaction_id"] for r in rows.values()) == sorted(built["fct_ids"])
    assert set(rows) == {(f, r[0]) for f, file_rows in LEDGER.items() for r in file_rows}


def test_rolling_windows_and_velocity(built):
    f = built["features"]
    row = f[(CHECKING, 5)]  # 2024-03-08: the 7 days 03-02..03-08 hold the 03-04 GitHub and itself
    assert (row["acct_txn_count_7d"], row["acct_amount_sum_7d"], row["acct_expense_sum_7d"]) == (
        2,
        -27.0,
        27.0,
    )
    assert row["acct_amount_mean_7d"] == -13.5
    assert (row["acct_txn_count_14d"], row["acct_expense_sum_14d"]) == (4, 37.0)  # + the two 03-01 coffees
    assert row["acct_days_since_prev_txn"] == 4  # 03-04
    first = f[(CHECKING, 2)]
    assert (first["acct_txn_count_same_day"], first["same_charge_count_same_day"]) == (2, 2)  # two coffees
    assert first["merchant_txn_count_same_day"] == 2
    assert first["acct_days_since_prev_txn"] is None
    assert first["acct_velocity_ratio_30d"] is None  # no earlier activity to compare with
    salary = f[(CHECKING, 6)]  # 03-15; 30 days before: 4 transactions -> 4/30 a day
    assert salary["acct_velocity_ratio_30d"] == pytest.approx(1 / (4 / 30))
    assert salary["acct_expense_count_30d"] == 4 and salary["acct_amount_sum_30d"] == pytest.approx(963.0)


def test_merchant_recurrence_and_first_time_flags(built):
    f = built["features"]
    for line in (2, 3):  # both coffees of the first day are first-time: same-day rows share their past
        row = f[(CHECKING, line)]
        assert (
            row["is_first_time_merchant"],
            row["merchant_prior_count"],
            row["merchant_days_since_prev"],
        ) == (1, 0, None)
    assert f[(CHECKING, 5)]["merchant_days_since_prev"] == 7
    last = f[(CHECKING, 7)]  # 03-20 Cafe; earlier Cafe days 03-01 (x2), 03-08
    assert (
        last["merchant_days_since_prev"],
        last["merchant_prior_count"],
        last["is_first_time_merchant"],
    ) == (12, 3, 0)
    assert (last["merchant_count_prior_30d"], last["merchant_count_prior_90d"]) == (3, 3)
    assert last["merchant_mean_gap_days"] == 7.0
    assert last["merchant_gap_ratio"] == pytest.approx(12 / 7)
    assert last["merchant_prior_mean_abs_amount"] == pytest.approx(17 / 3)
    # the savings coffee has no history in its own account
    savings = f[(SAVINGS, 2)]
    assert (savings["is_first_time_merchant"], savings["acct_prior_txn_count"]) == (1, 0)
    assert savings["acct_prior_mean_abs_amount"] is None and savings["acct_amount_pctl"] is None
    assert savings["category_prior_count_all_accounts"] == 2  # the two checking coffees of 03-01


def test_frequency_encodings(built):
    last = built["features"][(CHECKING, 7)]  # 5 earlier transactions in checking
    assert last["acct_prior_txn_count"] == 5
    assert last["merchant_prior_share"] == pytest.approx(3 / 5)
    assert last["category_prior_share"] == pytest.approx(3 / 5)  # meals_entertainment
    assert last["payment_method_prior_count"] == 2 and last["payment_method_prior_share"] == pytest.approx(
        2 / 5
    )
    assert last["acct_prior_expense_share"] == pytest.approx(4 / 5)
    assert last["acct_prior_distinct_merchants"] == 3  # cafe, github, acme
    salary = built["features"][(CHECKING, 6)]
    assert (salary["is_first_time_category"], salary["is_first_time_payment_method"]) == (1, 1)


def test_amount_relative_to_the_past(built):
    row = built["features"][(CHECKING, 5)]  # 7.00 after 5, 5, 20
    assert row["acct_prior_mean_abs_amount"] == pytest.approx(10.0)
    assert row["acct_prior_std_abs_amount"] == pytest.approx(math.sqrt(75))
    assert row["acct_amount_zscore"] == pytest.approx(-3 / math.sqrt(75))
    assert row["acct_amount_pctl"] == pytest.approx(2 / 3)  # 7 lies above 5, 5 and below 20
    # approximate median of 5, 5, 20: within one histogram bin (a factor 10^(1/6)) of 5
    assert 5 / 10 ** (1 / 6) <= row["acct_prior_median_abs_amount"] <= 5 * 10 ** (1 / 6)
    assert row["acct_cat_prior_mean_abs_amount"] == pytest.approx(5.0)  # the meals: 5, 5
    assert row["acct_cat_prior_std_abs_amount"] == 0.0 and row["acct_cat_amount_zscore"] is None
    assert row["acct_amount_to_prior_max_ratio"] == pytest.approx(7 / 20)
    assert (row["abs_amount"], row["amount_sign"], row["is_expense"], row["has_cents"]) == (7.0, -1, 1, 0)
    salary = built["features"][(CHECKING, 6)]
    assert (salary["is_round_10"], salary["is_round_100"], salary["amount_cents"]) == (1, 1, 0)
    assert salary["log_abs_amount"] == pytest.approx(math.log1p(1000))


def test_time_features(built):
    row = built["features"][(CHECKING, 6)]  # Friday 2024-03-15, a payday
    assert (row["day_of_week"], row["day_of_month"], row["month"], row["quarter"]) == (4, 15, 3, 1)
    assert (row["is_weekend"], row["is_business_day"], row["is_payday"], row["days_since_payday"]) == (
        0,
        1,
        1,
        0,
    )
    assert row["days_until_payday"] == 17  # April 1st
    assert row["dow_sin"] == pytest.approx(math.sin(2 * math.pi * 4 / 7))


def test_daily_cashflow_has_every_day(built):
    rows = built["daily"]
    days = [FIRST_DAY + timedelta(n) for n in range((LAST_DAY - FIRST_DAY).days + 1)]
    assert sorted(rows) == days
    assert rows[date(2024, 3, 5)]["transaction_count"] == 0 and rows[date(2024, 3, 5)]["net_flow"] == 0
    assert sorted(rows) == sorted(built["metric_days"])


def test_daily_cashflow_lags_and_rolling_means(built):
    rows = built["daily"]
    net = {d: r["net_flow"] for d, r in rows.items()}
    assert net[date(2024, 3, 1)] == Decimal("-10.00") and net[date(2024, 3, 4)] == Decimal("-120.00")
    assert rows[date(2024, 3, 2)]["net_flow_lag_1d"] == Decimal("-10.00")
    assert rows[date(2024, 3, 8)]["net_flow_lag_7d"] == Decimal("-10.00")
    assert rows[date(2024, 3, 1)]["net_flow_lag_1d"] is None
    # the 7 days before 03-08 (03-01..03-07): -10 and -120 -> mean -130/7; null before a full week
    assert rows[date(2024, 3, 8)]["net_flow_mean_7d"] == pytest.approx(-130 / 7)
    assert rows[date(2024, 3, 7)]["net_flow_mean_7d"] is None
    assert rows[date(2024, 3, 8)]["history_days"] == 7
    assert rows[date(2024, 3, 8)]["balance_before"] == Decimal("-130.00")
    assert rows[date(2024, 3, 15)]["is_payday"] == 1 and rows[date(2024, 3, 9)]["is_weekend"] == 1


def test_a_later_transaction_changes_no_earlier_row(built):
    """POINT IN TIME: a much larger coffee at the same merchant 3 days after the 03-08 one, inserted
    after the first build. Every row dated before it keeps every feature; the new row sees its past."""
    db, before = built["db"], built["features"]
    daily_before = built["daily"]
    later = (8, "2024-03-11", "Expense", "Coffee", "-500.00", "meals_entertainment", "credit_card", "Cafe")
    with db.connect() as conn, conn.cursor() as cur:
        insert_rows(cur, CHECKING, [later])
        cur.execute(
            "UPDATE raw.files SET rows_read = rows_read + 1, rows_loaded = rows_loaded + 1"
            " WHERE source_file = %s",
            (CHECKING,),
        )
    # a row written behind the loader's back: incremental builds follow changed files, so rebuild
    _, statuses, output = build(db, built["target"], "--full-refresh")
    assert models_built(statuses), output
    after, daily_after = features(db), daily(db)

    assert set(after) == set(before) | {(CHECKING, 8)}
    cutoff = date(2024, 3, 11)
    earlier = [key for key, row in before.items() if row["txn_date"] < cutoff]
    assert len(earlier) == 5
    for key in earlier:
        assert_same(before[key], after[key], key)
    for day, row in daily_before.items():
        if day < cutoff:
            assert_same(row, daily_after[day], day)
    # the SQL would have had to look ahead to change these; later rows do change
    assert after[(CHECKING, 7)]["merchant_prior_count"] == before[(CHECKING, 7)]["merchant_prior_count"] + 1
    assert after[(CHECKING, 7)]["merchant_days_since_prev"] == 9

    new = after[(CHECKING, 8)]
    assert (new["merchant_prior_count"], new["merchant_days_since_prev"], new["is_first_time_merchant"]) == (
        3,
        3,
        0,
    )
    assert new["acct_prior_txn_count"] == 4 and new["acct_prior_mean_abs_amount"] == pytest.approx(37 / 4)
    assert new["acct_amount_zscore"] > 10  # 500 against 5, 5, 20, 7
    assert new["acct_amount_pctl"] == 1.0 and new["acct_amount_to_prior_max_ratio"] == pytest.approx(25.0)
    assert (new["acct_txn_count_7d"], new["acct_expense_sum_7d"]) == (2, 507.0)  # 03-08 and itself
    assert daily_after[cutoff]["net_flow_lag_7d"] == daily_before[date(2024, 3, 4)]["net_flow"]


# ------------------------------------------------------------------ pandas reference on a random ledger

MERCHANTS = ["Cafe", "GitHub", "Shell", "Office Depot", "ACME", "Landlord", "Airline", "Bookshop"]
CATEGORIES = ["meals_entertainment", "software", "fuel", "office_supplies", "rent", "travel", "training"]
METHODS = ["credit_card", "debit_card", "bank_transfer", "cash"]


def random_ledger(seed: int = 7, n_rows: int = 400) -> dict[str, list[tuple]]:
    """Two accounts over ~4 months: repeat merchants, same-day repeats and exact duplicates, income."""
    rng = random.Random(seed)
    ledger: dict[str, list[tuple]] = {"alpha.csv": [], "beta.csv": []}
    start = date(2024, 1, 1)
    for _ in range(n_rows):
        source_file = "alpha.csv" if rng.random() < 0.6 else "beta.csv"
        day = start + timedelta(days=int(rng.triangular(0, 120, 100)))
        merchant = rng.choice(MERCHANTS[: rng.choice([3, 8])])
        if rng.random() < 0.1:
            typ, amount, category, method = (
                "Income",
                f"{rng.choice([500, 1200.5, 77.25]):.2f}",
                "",
                "bank_transfer",
            )
        else:
            value = round(math.exp(rng.uniform(0, 7)), rng.choice([0, 2]))
            typ, amount, category, method = (
                "Expense",
                f"{-value:.2f}",
                rng.choice(CATEGORIES),
                rng.choice(METHODS),
            )
        row = (
            len(ledger[source_file]) + 2,
            day.isoformat(),
            typ,
            f"{merchant} payment",
            amount,
            category,
            method,
            merchant,
        )
        ledger[source_file].append(row)
        if rng.random() < 0.05:  # an exact same-day duplicate charge
            ledger[source_file].append((len(ledger[source_file]) + 2, *row[1:]))
    return ledger


def reference_features(rows: list[dict]) -> dict[str, dict]:
    """The exact definitions, brute force: for each row, look at the others."""
    out = {}
    for r in rows:
        acct = [o for o in rows if o["account"] == r["account"]]
        prior = [o for o in acct if o["txn_date"] < r["txn_date"]]

        def window(days: int, rows=acct, r=r) -> list[dict]:
            return [o for o in rows if r["txn_date"] - timedelta(days - 1) <= o["txn_date"] <= r["txn_date"]]

        same_merchant = [o for o in prior if o["merchant"] == r["merchant"]]
        merchant_days = sorted({o["txn_date"] for o in same_merchant})
        abs_prior = [abs(float(o["amount"])) for o in prior]
        expenses_30 = [o for o in window(30) if o["txn_type"] == "Expense"]
        out[r["transaction_id"]] = {
            "acct_txn_count_7d": len(window(7)),
            "acct_txn_count_30d": len(window(30)),
            "acct_amount_sum_14d": float(sum(o["amount"] for o in window(14))),
            "acct_expense_count_30d": len(expenses_30),
            "acct_expense_sum_30d": float(-sum(o["amount"] for o in expenses_30)),
            "acct_active_days_30d": len({o["txn_date"] for o in window(30)}),
            "acct_txn_count_same_day": len(window(1)),
            "same_charge_count_same_day": sum(
                1 for o in window(1) if o["amount"] == r["amount"] and o["merchant"] == r["merchant"]
            ),
            "acct_prior_txn_count": len(prior),
            "category_prior_count": sum(1 for o in prior if o["category"] == r["category"]),
            "payment_method_prior_count": sum(1 for o in prior if o["payment_method"] == r["payment_method"]),
            "merchant_prior_count": len(same_merchant),
            "merchant_count_prior_30d": sum(
                1 for o in same_merchant if o["txn_date"] >= r["txn_date"] - timedelta(30)
            ),
            "merchant_days_since_prev": (r["txn_date"] - merchant_days[-1]).days if merchant_days else None,
            "merchant_mean_gap_days": (
                (merchant_days[-1] - merchant_days[0]).days / (len(merchant_days) - 1)
                if len(merchant_days) >= 2
                else None
            ),
            "acct_prior_distinct_merchants": len({o["merchant"] for o in prior}),
            "acct_days_since_prev_txn": (
                (r["txn_date"] - max(o["txn_date"] for o in prior)).days if prior else None
            ),
            "acct_prior_mean_abs_amount": sum(abs_prior) / len(abs_prior) if abs_prior else None,
            "acct_prior_std_abs_amount": (
                math.sqrt(
                    sum((a - sum(abs_prior) / len(abs_prior)) ** 2 for a in abs_prior) / (len(abs_prior) - 1)
                )
                if len(abs_prior) >= 2
                else None
            ),
            # the exact percentile position lies between these two
            "_pctl_low": sum(1 for a in abs_prior if a < abs(float(r["amount"])) / 10 ** (1 / 6)) / len(prior)
            if prior
            else None,
            "_pctl_high": sum(1 for a in abs_prior if a <= abs(float(r["amount"])) * 10 ** (1 / 6))
            / len(prior)
            if prior
            else None,
        }
    return out


@pytest.fixture(scope="module")
def random_built(embedded_db, tmp_path_factory):
    with scratch_database(embedded_db) as db:
        load_ledger(db, random_ledger())
        code, statuses, output = build(db, tmp_path_factory.mktemp("dbt_features_random") / "target")
        assert code == 0, output  # every dbt test passes on this ledger too
        yield db


def test_sql_agrees_with_a_brute_force_reference(random_built):
    fct = _query(random_built, "select * from marts.fct_transactions")
    assert len(fct) > 400
    expected = reference_features(fct)
    actual = {
        r["transaction_id"]: r for r in _query(random_built, "select * from features.ml_transaction_features")
    }
    assert set(actual) == set(expected)
    checked = 0
    for tid, want in expected.items():
        got = actual[tid]
        for column, value in want.items():
            if column.startswith("_"):
                continue
            if value is None or got[column] is None:
                assert value is None and got[column] is None, (tid, column, value, got[column])
            else:
                assert got[column] == pytest.approx(value, rel=1e-9, abs=1e-9), (
                    tid,
                    column,
                    value,
                    got[column],
                )
            checked += 1
        if want["_pctl_low"] is None:
            assert got["acct_amount_pctl"] is None
        else:
            assert want["_pctl_low"] - 1e-9 <= got["acct_amount_pctl"] <= want["_pctl_high"] + 1e-9, (
                tid,
                got,
                want,
            )
    assert checked > 5000
    # the ledger exercises what the features are about
    assert any(w["same_charge_count_same_day"] > 1 for w in expected.values())
    assert any(w["merchant_mean_gap_days"] for w in expected.values())


def test_calendar_matches_the_python_time_features(random_built):
    """Training reads time features from these tables, serving computes them in Python
    (titans_assets.lib.ml.features.time_features): same values, day by day (January to July 2024 here:
    MLK, Presidents, Memorial Day, Juneteenth, Independence Day)."""
    import pandas as pd

    from titans_assets.lib.ml.features import time_features

    calendar = pd.DataFrame(_query(random_built, "select * from features.ml_calendar_features order by 1"))
    python = time_features(pd.Series(pd.to_datetime(calendar["calendar_date"])))
    shared = [c for c in python.columns if c in calendar.columns]
    assert {"day_of_week", "is_holiday", "is_business_day", "days_until_payday", "dom_sin"} <= set(shared)
    for column in shared:
        assert calendar[column].astype(float).to_numpy() == pytest.approx(python[column].to_numpy()), column
    assert calendar["is_holiday"].sum() >= 5
