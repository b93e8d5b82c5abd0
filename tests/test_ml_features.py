"""The one row-level feature definition (training and serving) and its ports of the dbt macros."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from titans_assets.lib.csv_contract import parse_csv
from titans_assets.lib.generator import generate
from titans_assets.lib.loader import landing_files
from titans_assets.lib.ml import features as F


def s(*values) -> pd.Series:
    return pd.Series(list(values), dtype=object)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Meals & Entertainment ", "meals_entertainment"),
        (" Credit-Card", "credit_card"),
        ("credit__car", "credit_car"),
        ("__x__", "x"),
        ("", None),
        (None, None),
    ],
)
def test_normalize_label_matches_the_dbt_macro_examples(raw, expected):
    assert F.normalize_label(s(raw)).iloc[0] == expected


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("STARBUCKS #1234  Seattle*WA", "starbucks seattle wa"),
        ("Shell fuel 0042", "shell fuel"),
        ("AT&T bill 2024", "at&t bill"),
        ("O'Reilly 12ab", "o'reilly 12ab"),
        ("1234", None),
        ("", None),
    ],
)
def test_clean_description_drops_punctuation_and_digit_only_tokens(raw, expected):
    assert F.clean_description(s(raw)).iloc[0] == expected


def test_merchant_prefers_the_reference_then_the_description():
    got = F.merchant_of(s("  ACME   Corp ", "", None), s("x", "Coffee Shop #12", "Uber *trip 99"))
    assert got.tolist() == ["acme corp", "coffee shop", "uber trip"]


def test_vocabulary_from_the_seeds_maps_typos_and_keeps_unknown_labels():
    v = F.Vocabulary.from_seeds()
    assert v.payment_method(s("credit_car", " Credit Card ", "zelle", None)).tolist() == [
        "credit_card",
        "credit_card",
        "zelle",
        None,
    ]
    assert v.category(s("Meals and Entertainment", "software")).tolist() == [
        "meals_entertainment",
        "software",
    ]


def test_prepare_accepts_a_request_shape_and_fills_what_is_missing():
    v = F.Vocabulary.from_seeds()
    p = F.prepare(pd.DataFrame({"date": ["2024-01-15"], "amount": ["-12.50"]}), v)
    row = p.iloc[0]
    assert row["txn_date"] == pd.Timestamp("2024-01-15") and row["amount"] == -12.5
    assert row["description"] == "" and row["reference"] == "" and row["merchant"] is None
    assert row["payment_method"] is None and row["category"] is None


def test_time_features_know_weekends_holidays_and_paydays():
    dates = pd.Series(pd.to_datetime(["2024-01-15", "2024-01-13", "2024-02-29", "2024-07-01"]))
    t = F.time_features(dates)
    assert t["is_holiday"].tolist() == [1, 0, 0, 0]  # MLK day
    assert t["is_weekend"].tolist() == [0, 1, 0, 0]
    assert t["is_business_day"].tolist() == [0, 0, 1, 1]
    assert t["days_since_payday"].tolist() == [0, 12, 14, 0]
    assert t["days_until_payday"].tolist() == [17, 2, 1, 14]
    assert t["is_month_end"].tolist() == [0, 0, 1, 0] and t["is_month_start"].tolist() == [0, 0, 0, 1]
    np.testing.assert_allclose(t["dow_sin"] ** 2 + t["dow_cos"] ** 2, 1.0)


def test_amount_features():
    a = F.amount_features(pd.Series([-120.0, 45.5, 0.0]))
    np.testing.assert_allclose(a["log_abs_amount"], np.log1p([120.0, 45.5, 0.0]))
    assert a["is_expense"].tolist() == [1, 0, 0]
    assert a["is_round_10"].tolist() == [1, 0, 1] and a["has_cents"].tolist() == [0, 1, 0]


def test_row_features_are_the_same_for_one_row_and_for_a_batch():
    v = F.Vocabulary.from_seeds()
    batch = pd.DataFrame(
        {
            "txn_date": ["2024-03-01", "2024-03-02", "2024-12-25"],
            "amount": [-5.0, 10.0, -99.99],
            "description": ["a", "b", "c"],
        }
    )
    whole = F.row_features(F.prepare(batch, v))
    for i in range(len(batch)):
        one = F.row_features(F.prepare(batch.iloc[[i]], v))
        pd.testing.assert_frame_equal(one, whole.iloc[[i]])
    assert "log_abs_amount" not in F.row_features(F.prepare(batch, v), include_amount=False)


def test_prepare_is_idempotent():
    """Models rescore holdouts that are already prepared: preparing twice must change nothing."""
    v = F.Vocabulary.from_seeds()
    raw = pd.DataFrame(
        {
            "date": ["2024-01-15", "2024-02-01"],
            "amount": ["-12.50", "40"],
            "description": ["STARBUCKS #1234  Seattle*WA", ""],
            "reference": [None, " ACME  Corp"],
            "payment_method": ["credit_car", None],
            "category": ["Meals & Entertainment", None],
        }
    )
    once = F.prepare(raw, v)
    pd.testing.assert_frame_equal(F.prepare(once, v), once)


# --------------------------------------------------------------------------- the fast (small-frame) path
# A request (up to features.SMALL rows) is cleaned value by value through caches and its calendar read
# per day from a cache; a training frame is cleaned once per distinct value. The tests below hold the
# two paths, and the pandas string chains the cleaners replaced, to the same values on generated
# ledgers and on messy values.

MESSY = [
    "",
    " ",
    "\t\n",
    None,
    np.nan,
    pd.NA,
    pd.NaT,
    0,
    12,
    -3.5,
    1e20,
    True,
    "  ACME   Corp ",
    "AT&T bill 2024",
    "O'Reilly 12ab",
    "STARBUCKS #1234  Seattle*WA",
    "__x__",
    "credit__car",
    " Credit-Card",
    "Café ☕ naïve",
    "日本語 テキスト 123",
    "ÉCOLE_NORMALE",
    "x_y_z",
    "tab\there",
    "new\nline",
    "1234",
    "12 34 abc12 ab 12",
    "Meals & Entertainment ",
    "meals and entertainment",
    "CREDIT CARD",
    "zelle",
    "١٢٣ arabic digits",
    "ǅemal ŉ ß",
    "a" * 300,
    "AMZN MKTP US*2K4RT1",
    "-_-",
    "&&&",
    "'quoted'",
    "wire/ach",
    "x\u00a0y",
    "x\u2003y",
]


def _reference_text(s: pd.Series) -> pd.Series:
    return s.astype(object).where(s.notna(), "").map(str).astype(object)


def _reference_blank(s: pd.Series) -> pd.Series:
    return s.astype(object).where(s.str.len() > 0, None)


def reference_normalize_label(s: pd.Series) -> pd.Series:
    """The pandas string chains features.py used before its one-value cleaners."""
    out = (
        _reference_text(s)
        .str.strip()
        .str.lower()
        .str.replace(re.compile(r"[\W_]+"), "_", regex=True)
        .str.strip("_")
    )
    return _reference_blank(out)


def reference_clean_name(s: pd.Series) -> pd.Series:
    return _reference_blank(
        _reference_text(s).str.lower().str.replace(re.compile(r"\s+"), " ", regex=True).str.strip()
    )


def reference_clean_description(s: pd.Series) -> pd.Series:
    out = (
        _reference_text(s)
        .str.lower()
        .str.replace(re.compile(r"[^\w&']+|_+"), " ", regex=True)
        .str.replace(re.compile(r"(?<!\w)[0-9]+(?!\w)"), " ", regex=True)
        .str.replace(re.compile(r"\s+"), " ", regex=True)
        .str.strip()
    )
    return _reference_blank(out)


def reference_time_features(dates: pd.Series) -> pd.DataFrame:
    """time_features as it was written with pandas' datetime accessors."""
    d = pd.to_datetime(dates)
    dow = d.dt.day_of_week.to_numpy(dtype=float)
    dom = d.dt.day.to_numpy(dtype=float)
    month = d.dt.month.to_numpy(dtype=float)
    days_in_month = d.dt.days_in_month.to_numpy(dtype=float)
    weekend = dow >= 5
    holiday = d.isin(F._holidays()).to_numpy()
    since = np.where(dom >= 15, dom - 15, dom - 1)
    until = np.where(dom < 15, 15 - dom, days_in_month - dom + 1)

    def cyclic(values, period, name):
        angle = 2 * np.pi * values / period
        return {f"{name}_sin": np.sin(angle), f"{name}_cos": np.cos(angle)}

    return pd.DataFrame(
        {
            "day_of_week": dow,
            "day_of_month": dom,
            "month": month,
            "quarter": d.dt.quarter.to_numpy(dtype=float),
            "day_of_year": d.dt.day_of_year.to_numpy(dtype=float),
            **cyclic(dow, 7, "dow"),
            **cyclic(dom - 1, days_in_month, "dom"),
            **cyclic(month - 1, 12, "month"),
            "is_weekend": weekend.astype(float),
            "is_holiday": holiday.astype(float),
            "is_business_day": (~weekend & ~holiday).astype(float),
            "is_month_start": (dom <= 3).astype(float),
            "is_month_end": (dom > days_in_month - 3).astype(float),
            "days_since_payday": since,
            "days_until_payday": until,
        },
        index=dates.index,
    )


@pytest.fixture(scope="module")
def raw_rows() -> pd.DataFrame:
    """The parser's rows of a messy generated ledger (text as exported: codes, store numbers, typos,
    stray spaces, blank fields), as features.prepare receives them in the pipeline."""
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp) / "raw", rows=6000, seed=3, messy_rate=0.3, labels_dir=Path(tmp) / "labels")
        return pd.concat(
            [parse_csv(p.read_bytes()).rows for p in landing_files(Path(tmp) / "raw")], ignore_index=True
        )


def _chunks(frame: pd.DataFrame, sizes=(1, 2, 7, F.SMALL)):
    start, i = 0, 0
    while start < len(frame):
        size = sizes[i % len(sizes)]
        yield frame.iloc[start : start + size]
        start += size
        i += 1


@pytest.mark.parametrize(
    "fast, reference",
    [
        (F.normalize_label, reference_normalize_label),
        (F.clean_name, reference_clean_name),
        (F.clean_description, reference_clean_description),
    ],
)
def test_cleaners_equal_the_pandas_string_chains(raw_rows, fast, reference):
    texts = pd.concat(
        [raw_rows[c] for c in ("description", "reference", "category", "payment_method")], ignore_index=True
    )
    values = pd.concat([texts, pd.Series(MESSY * 3, dtype=object)], ignore_index=True)
    expected = reference(values)
    pd.testing.assert_series_equal(fast(values), expected)  # many rows: once per distinct value
    for i in range(0, len(values), 997):  # a few rows: value by value through the caches
        part = values.iloc[i : i + 5]
        pd.testing.assert_series_equal(fast(part), expected.iloc[i : i + 5])
    for v in MESSY:
        pd.testing.assert_series_equal(
            fast(pd.Series([v], dtype=object)), reference(pd.Series([v], dtype=object))
        )
    for dtype in ("str", "float64", "Int64", "datetime64[ns]"):
        typed = pd.Series(
            ["7", None, "7", "2024-01-05"]
            if dtype == "str"
            else [1.5, None, 3.0, 1.5]
            if dtype == "float64"
            else [1, None, 3, 1]
            if dtype == "Int64"
            else ["2024-01-05", None, "2024-01-06", "2024-01-05"],
            dtype=dtype,
        )
        pd.testing.assert_series_equal(fast(typed), reference(typed))
        pd.testing.assert_series_equal(fast(typed.iloc[:2]), reference(typed.iloc[:2]))


def test_prepare_gives_the_same_rows_one_by_one_and_in_bulk(raw_rows):
    v = F.Vocabulary.from_seeds()
    rows = raw_rows[["txn_date", "description", "amount", "category", "payment_method", "reference"]]
    whole = F.prepare(rows, v)
    assert len(rows) > 10 * F.SMALL and whole["merchant"].notna().mean() > 0.9
    for part in _chunks(rows.iloc[:3000]):
        pd.testing.assert_frame_equal(F.prepare(part, v), whole.loc[part.index], check_exact=True)
        cols = F.prepare_columns(part, v)
        for name in F.PREPARED_COLUMNS:
            got, want = cols[name], whole.loc[part.index, name].to_numpy()
            assert got.dtype == want.dtype and pd.Series(got).equals(pd.Series(want)), name


def test_prepare_of_requests_with_odd_values_equals_the_bulk_path(monkeypatch):
    """Dates and amounts a request may carry (ISO strings, missing, datetime64, date objects, numbers as
    text): the small path parses what it can itself and leaves the rest to pandas, like the bulk path."""
    import datetime as dt

    v = F.Vocabulary.from_seeds()
    frames = [
        pd.DataFrame(
            {
                "date": ["2024-02-29", None, "2023-12-31", "2100-02-28", "1999-01-01"],
                "amount": [-1.0, None, 3.5, np.nan, 0.0],
                "description": MESSY[:5],
                "reference": MESSY[5:10],
                "payment_method": MESSY[10:15],
                "category": MESSY[15:20],
            }
        ),
        pd.DataFrame(
            {
                "txn_date": pd.to_datetime(["2024-01-15 10:30", "NaT", "1960-03-01 23:59"]),
                "amount": [1, 2, 3],
                "description": MESSY[20:23],
            }
        ),
        pd.DataFrame(
            {"txn_date": [dt.date(2024, 7, 4), dt.date(2024, 12, 25), None], "amount": ["-12.50", "x", None]}
        ),
        pd.DataFrame({"txn_date": ["01/15/2024", "02/29/2024"], "amount": [True, False]}),
        pd.DataFrame(
            {
                "txn_date": pd.Series(["2024-03-01", None], dtype="str"),
                "amount": pd.Series([1.5, None], dtype="Float64"),
            }
        ),
        pd.DataFrame({"amount": [-5.0]}),
        pd.DataFrame({"txn_date": ["2024-01-15"], "description": [None], "reference": [np.nan]}),
    ]
    small = [F.prepare(f, v) for f in frames]
    monkeypatch.setattr(F, "SMALL", -1)  # every frame through the bulk path
    for f, got in zip(frames, small):
        pd.testing.assert_frame_equal(got, F.prepare(f, v), check_exact=True)
    with pytest.raises(ValueError):
        F.prepare(pd.DataFrame({"date": ["2023-02-29"]}), v)
    monkeypatch.undo()
    with pytest.raises(ValueError):
        F.prepare(pd.DataFrame({"date": ["2023-02-29"]}), v)


def test_time_features_equal_the_pandas_calendar_every_day_and_per_request():
    days = pd.Series(pd.date_range("1960-01-01", "2110-12-31", freq="D"))
    expected = reference_time_features(days)
    pd.testing.assert_frame_equal(F.time_features(days), expected, check_exact=True)
    odd = pd.Series(
        pd.to_datetime(
            [
                "2024-01-15 10:30",
                None,
                "2024-02-29",
                "2020-02-29",
                "2024-12-31",
                "2024-11-28",
                "2026-07-03",
                "2027-06-18 00:00:00.000001",
                "1969-12-31 23:59",
            ],
            format="ISO8601",
        )
    )
    pd.testing.assert_frame_equal(F.time_features(odd), reference_time_features(odd), check_exact=True)
    for i in range(0, len(days), 3001):  # one request at a time: the per-day cache
        one = days.iloc[i : i + 1]
        pd.testing.assert_frame_equal(F.time_features(one), expected.iloc[i : i + 1], check_exact=True)
    for i in range(len(odd)):
        one = odd.iloc[i : i + 1]
        pd.testing.assert_frame_equal(F.time_features(one), reference_time_features(one), check_exact=True)
    holidays = F.time_features(pd.Series(F._holidays()))
    assert holidays["is_holiday"].eq(1).all() and holidays["is_business_day"].eq(0).all()


def test_row_features_of_a_ledger_one_by_one_equal_the_bulk(raw_rows):
    v = F.Vocabulary.from_seeds()
    prepared = F.prepare(raw_rows, v)
    whole = F.row_features(prepared)
    values = F.row_values(prepared)
    np.testing.assert_array_equal(values.T, whole.to_numpy())
    for part in _chunks(prepared.iloc[:2000], sizes=(1, 3, F.SMALL)):
        pd.testing.assert_frame_equal(F.row_features(part), whole.loc[part.index], check_exact=True)
        np.testing.assert_array_equal(
            F.row_values(F.prepare_columns(part, v)), values[:, prepared.index.get_indexer(part.index)]
        )
    amounts = pd.Series([-120.0, 45.5, 0.0, -0.0, np.nan, 1e9, -0.005, 0.995, 10.0, 9.999, -19.99])
    old = pd.DataFrame(
        {
            "log_abs_amount": np.log1p(amounts.abs()),
            "is_expense": (amounts < 0).astype(float),
            "is_round_10": (
                (np.round(amounts.abs() * 100) % 100 == 0) & (np.round(amounts.abs()) % 10 == 0)
            ).astype(float),
            "has_cents": (np.round(amounts.abs() * 100) % 100 != 0).astype(float),
        }
    )
    pd.testing.assert_frame_equal(F.amount_features(amounts), old, check_exact=True)


def _as_request_columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """A frame's rows as the service passes them (features.Rows): float amounts, object arrays of
    str/None for the rest (missing values as None, as a validated request has them)."""
    out = {}
    for c in frame.columns:
        values = [
            None if (v is None or (not isinstance(v, str) and pd.isna(v))) else v for v in frame[c].tolist()
        ]
        if c == "amount":
            out[c] = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
        else:
            column = np.empty(len(values), dtype=object)
            column[:] = values
            out[c] = column
    return out


def test_prepare_columns_of_request_columns_equal_the_frame_path(raw_rows, monkeypatch):
    """`prepare_columns` of plain columns (what the service passes instead of a DataFrame) gives the
    values of the DataFrame of the same rows: one row, a few, and (through pandas) more than SMALL."""
    v = F.Vocabulary.from_seeds()
    rows = raw_rows[["txn_date", "description", "amount", "category", "payment_method", "reference"]].copy()
    rows["amount"] = pd.to_numeric(rows["amount"], errors="coerce")
    rows["txn_date"] = pd.to_datetime(rows["txn_date"], errors="coerce", format="mixed").dt.strftime(
        "%Y-%m-%d"
    )
    odd = pd.DataFrame(
        {
            "txn_date": ["2024-02-29", None, "2100-12-31"],
            "amount": [0.0, np.nan, -1e9],
            "description": [None, "  ACME   Corp ", "Café ☕ naïve"],
            "category": ["credit__car", None, ""],
            "payment_method": [" Credit-Card", "zelle", None],
            "reference": ["", None, "AT&T bill 2024"],
        }
    )
    rows = pd.concat([rows.iloc[:1500], odd], ignore_index=True)
    whole = F.prepare(rows, v)
    for part in [
        *_chunks(rows, sizes=(1, 2, 7, F.SMALL)),
        rows.iloc[: F.SMALL + 40],
        rows.iloc[[1500, 1501, 1502]],
    ]:
        cols = F.prepare_columns(_as_request_columns(part), v)
        for name in F.PREPARED_COLUMNS:
            got, want = cols[name], whole.loc[part.index, name].to_numpy()
            assert got.dtype == want.dtype and pd.Series(got).equals(pd.Series(want)), name
    assert F.input_rows(_as_request_columns(rows.iloc[:5])) == 5 and F.input_rows({}) == 0
    monkeypatch.setattr(F, "SMALL", -1)  # columns through the bulk (pandas) path too
    cols = F.prepare_columns(_as_request_columns(rows.iloc[:300]), v)
    for name in F.PREPARED_COLUMNS:
        assert pd.Series(cols[name]).equals(pd.Series(whole[name].to_numpy()[:300])), name
