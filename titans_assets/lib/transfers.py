"""Transfers between the user's own accounts, in Python: the rule dbt's int_transfer_pairs applies
(keep the two in step; the hint words are one list, dbt_project.yml's `transfer_hints`), for paths
without a database (the model sweep's `data.frame_from_csvs`).

Candidates: an outflow and an inflow of the same absolute amount in two different accounts, the same
currency (an unknown one is compatible), at most `window` days apart. Hints: a strong one (own-account
words: PAYMENT THANK YOU, AUTOPAY, CRD PMT, TO/FROM SAVINGS, a masked number `...1234`) scores 2, a
weak one (TRANSFER, PAYMENT, PMT, DEPOSIT...) 1, the other account's last 4 digits in the text 3; a
candidate needs a score of 2. Best score first, then the nearest date; one-to-one by rounds of
mutual first choices.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import yaml

from titans_assets.lib.paths import PROJECT_ROOT

WINDOW_DAYS = 4
ROUNDS = 4


def hint_vocabulary() -> dict:
    """dbt_project.yml's `transfer_hints`: what int_transfer_hints matches, and this module too."""
    project = yaml.safe_load((PROJECT_ROOT / "dbt_project" / "dbt_project.yml").read_text(encoding="utf-8"))
    return project["vars"]["transfer_hints"]


def postgres_patterns(hints: dict | None = None) -> tuple[str, str]:
    """The strong and weak hints as one PostgreSQL regex each (what the model matches, unfiltered)."""
    hints = hints or hint_vocabulary()
    strong = "|".join(h["pattern"] for h in hints["strong"])
    return f"({strong})", "(" + "|".join(map(re.escape, hints["weak"])) + ")"


def python_regex(pattern: str) -> str:
    """A hint pattern for Python's `re`: PostgreSQL's word boundaries `\\m`, `\\M` as `\\b`."""
    return pattern.replace("\\m", "\\b").replace("\\M", "\\b")


def _hint_patterns() -> tuple[re.Pattern, re.Pattern]:
    strong, weak = postgres_patterns()
    return re.compile(python_regex(strong), re.IGNORECASE), re.compile(weak, re.IGNORECASE)


STRONG, WEAK = _hint_patterns()


def account_digits(account: str) -> str:
    digits = re.sub(r"[^0-9]", "", account or "")
    return digits[-4:] if len(digits) >= 4 else ""


def pairs(frame: pd.DataFrame, window: int = WINDOW_DAYS) -> pd.DataFrame:
    """Pairs among `frame`'s rows (columns account, txn_date, amount, description; optional reference,
    currency): a frame of (out_index, in_index, days_apart, hint_score), index labels of `frame`."""
    empty = pd.DataFrame({"out_index": [], "in_index": [], "days_apart": [], "hint_score": []})
    if frame.empty:
        return empty
    desc = frame["description"].fillna("").astype(str)
    text = desc + " " + (frame["reference"].fillna("").astype(str) if "reference" in frame else "")
    rows = pd.DataFrame(
        {
            "i": frame.index,
            "account": frame["account"].astype(str).to_numpy(),
            "day": pd.to_datetime(frame["txn_date"]).to_numpy().astype("datetime64[D]").astype(np.int64),
            "cents": np.round(pd.to_numeric(frame["amount"]).to_numpy(dtype=float) * 100).astype(np.int64),
            "currency": (
                frame["currency"] if "currency" in frame else pd.Series(None, index=frame.index)
            ).to_numpy(),
            "text": text.to_numpy(),
            "strong": desc.map(lambda t: STRONG.search(t) is not None).to_numpy(),
            "weak": text.map(lambda t: WEAK.search(t) is not None).to_numpy(),
        }
    )
    rows["digits"] = [account_digits(a) for a in rows["account"]]
    outs = rows[rows["cents"] < 0].assign(key=lambda d: -d["cents"])
    ins = rows[rows["cents"] > 0].assign(key=lambda d: d["cents"])
    c = outs.merge(ins, on="key", suffixes=("_o", "_i"))
    c = c[(c["account_o"] != c["account_i"]) & ((c["day_o"] - c["day_i"]).abs() <= window)]
    cur_o, cur_i = c["currency_o"], c["currency_i"]
    c = c[cur_o.isna() | cur_i.isna() | (cur_o == cur_i)]
    if c.empty:
        return empty

    def names(d_col: str, t_col: str) -> np.ndarray:
        return np.array([bool(d) and d in t for d, t in zip(c[d_col], c[t_col])], dtype=int)

    score = (
        2 * (c["strong_o"].astype(int) + c["strong_i"].astype(int))
        + c["weak_o"].astype(int)
        + c["weak_i"].astype(int)
        + 3 * (names("digits_i", "text_o") + names("digits_o", "text_i"))
    )
    c = c.assign(days_apart=(c["day_o"] - c["day_i"]).abs(), hint_score=score)
    c = c[c["hint_score"] >= 2].rename(columns={"i_o": "out_index", "i_i": "in_index"})
    taken = []
    for _ in range(ROUNDS):
        if c.empty:
            break
        order = c.sort_values(
            ["hint_score", "days_apart", "out_index", "in_index"],
            ascending=[False, True, True, True],
            kind="stable",
        )
        first_out = order.drop_duplicates("out_index")
        first_in = order.drop_duplicates("in_index")
        mutual = first_out.merge(first_in[["out_index", "in_index"]], on=["out_index", "in_index"])
        if mutual.empty:
            break
        taken.append(mutual[["out_index", "in_index", "days_apart", "hint_score"]])
        c = c[~c["out_index"].isin(mutual["out_index"]) & ~c["in_index"].isin(mutual["in_index"])]
    return pd.concat(taken, ignore_index=True) if taken else empty


def transfer_mask(frame: pd.DataFrame, window: int = WINDOW_DAYS) -> pd.Series:
    """True on both sides of every pair."""
    p = pairs(frame, window)
    return pd.Series(
        frame.index.isin(pd.Index(p["out_index"]).append(pd.Index(p["in_index"]))), index=frame.index
    )
