"""Synthetic anomalies injected into a period of real rows: how the model is evaluated, and its
threshold chosen, when there are no labels."""

from __future__ import annotations

import numpy as np
import pandas as pd

from titans_assets.lib.ml.anomaly.canon import _canon
from titans_assets.lib.ml.anomaly.constants import INJECTED_KINDS
from titans_assets.lib.ml.features import Vocabulary

_SYLLABLES = ("ka", "lo", "mi", "ro", "ve", "zan", "tor", "bel", "qui", "nex", "dra", "pel", "sor", "vin")
_SUFFIXES = ("trading", "digital", "outlet", "supply", "store")
_INJECT_SHARES = {
    "amount_spike": 0.25,
    "duplicate_charge": 0.2,
    "atypical_merchant": 0.15,
    "unusual_day": 0.15,
    "small_charge_burst": 0.1,
    "new_merchant_large": 0.15,
}


def _new_name(rng: np.random.Generator, taken: set[str]) -> str:
    """A merchant name nobody has used: lower-case words, so clean_name(name.title()) == name."""
    while True:
        word = "".join(rng.choice(_SYLLABLES, size=int(rng.integers(2, 4))))
        name = f"{word} {_SUFFIXES[int(rng.integers(len(_SUFFIXES)))]} {int(rng.integers(100, 1000))}"
        if name not in taken:
            taken.add(name)
            return name


def inject_anomalies(
    frame: pd.DataFrame,
    reference: pd.DataFrame | None = None,
    *,
    rate: float = 0.01,
    seed: int = 0,
    vocabulary: Vocabulary | None = None,
    kinds: tuple[str, ...] = INJECTED_KINDS,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """A copy of `frame` (warehouse columns) with synthetic anomalies, the labels and their kinds.

    `reference` is the history the anomalies are relative to (the training period; default the frame
    itself). About `rate` x rows anomalous rows, at least one of each kind when the data allows
    (shares as in the generator):
    - amount_spike: an expense at 8-20x its merchant's median in the reference;
    - atypical_merchant: an expense's merchant (reference, description, amount) swapped for a
      merchant (5+ rows) the reference never saw under that row's category;
    - duplicate_charge: an expense charged again, same day, same text and amount (a new row);
    - small_charge_burst: 2-8 charges of 0.50-4.99 at a never-seen merchant on one day or the next;
    - new_merchant_large: a never-seen merchant with 1-3x the reference's 99th-percentile expense;
    - unusual_day: a charge from a business-day-only merchant (5+ rows) moved to a weekend within
      10 days.
    Mutated rows keep their index label; added rows get new labels after the largest one (the index
    is reset first unless it is a unique integer index) and no line_number. `labels` and `kinds`
    follow the returned frame's row order (kind None = untouched)."""
    unknown = set(kinds) - set(INJECTED_KINDS)
    if unknown:
        raise ValueError(f"unknown anomaly kinds {sorted(unknown)}")
    run = _Injection(frame, reference, rate, seed, vocabulary or Vocabulary.from_seeds(), kinds)
    if "amount_spike" in run.budget:
        run.amount_spike()
    if "atypical_merchant" in run.budget and len(run.seen):
        run.atypical_merchant()
    if "unusual_day" in run.budget:
        run.unusual_day()
    added: list[pd.DataFrame] = []
    added_kinds: list[str] = []
    if "duplicate_charge" in run.budget:
        rows = run.take(run.candidates, run.budget["duplicate_charge"])
        added.append(run.out.iloc[rows].copy())
        added_kinds += ["duplicate_charge"] * len(rows)
    for name_kind in ("small_charge_burst", "new_merchant_large"):
        if name_kind in run.budget and len(run.candidates):
            for block in run.new_merchant_blocks(name_kind):
                added.append(block)
                added_kinds += [name_kind] * len(block)
    return run.result(added, added_kinds)


class _Injection:
    """One `inject_anomalies` run: the copy being changed, what the reference says about each expense
    merchant, the rows still free, the labels so far and the random generator (drawn from in the order
    the kinds are injected)."""

    def __init__(self, frame, reference, rate: float, seed: int, vocabulary: Vocabulary, kinds):
        self.rng = np.random.default_rng(seed)
        out = frame.copy()
        if not (pd.api.types.is_integer_dtype(out.index) and out.index.is_unique):
            out = out.reset_index(drop=True)
        for col in ("description", "reference", "merchant"):
            if col in out:
                out[col] = out[col].astype(object)
        self.out = out
        self.date_col = "txn_date" if "txn_date" in out else "date"
        self.n = n = len(out)
        ref = out if reference is None else reference
        self.rc = rc = _canon(ref, vocabulary)
        fc = _canon(out, vocabulary)
        self.ref_desc = (
            ref["description"].to_numpy(dtype=object) if "description" in ref else np.full(len(ref), None)
        )
        self.ref_refr = (
            ref["reference"].to_numpy(dtype=object) if "reference" in ref else np.full(len(ref), None)
        )
        self.ref_amount = rc["amount"].to_numpy()

        # what the reference says about each expense merchant
        er = rc[rc["expense"].to_numpy() & rc["has_merchant"].to_numpy()]
        g = er.groupby("merchant", sort=False)
        self.m_med = np.exp(g["log_abs"].median())
        self.m_n = g.size()
        self.m_bday = g["bday"].mean()
        self.m_rows = g.indices  # merchant -> positions in er
        self.er_pos = np.flatnonzero(rc["expense"].to_numpy() & rc["has_merchant"].to_numpy())
        self.seen = pd.crosstab(er["merchant"], er["category"]) > 0 if len(er) else pd.DataFrame()
        self.taken_names = set(rc["merchant"].dropna()) | set(fc["merchant"].dropna())
        self.q99 = float(np.quantile(er["abs"], 0.99)) if len(er) else 1000.0

        self.merch = fc["merchant"].to_numpy(dtype=object)
        self.cats = cats = fc["category"].to_numpy(dtype=object)
        self.dates = pd.to_datetime(fc["date"])
        self.candidates = np.flatnonzero(
            fc["expense"].to_numpy() & fc["has_merchant"].to_numpy() & pd.notna(cats)
        )
        self.free = np.ones(n, dtype=bool)
        self.labels = np.zeros(n, dtype=bool)
        self.kind = np.full(n, None, dtype=object)
        target = max(int(round(rate * n)), len(kinds) + 1)
        share = np.array([_INJECT_SHARES[k] for k in kinds])
        self.budget = dict(
            zip(kinds, np.maximum(1, np.round(target * share / share.sum())).astype(int).tolist())
        )

    def take(self, pool: np.ndarray, k: int) -> np.ndarray:
        """Up to k free rows of `pool`, drawn at random and no longer free."""
        pool = pool[self.free[pool]]
        if len(pool) == 0 or k <= 0:
            return pool[:0]
        pick = self.rng.choice(pool, size=min(k, len(pool)), replace=False)
        self.free[pick] = False
        return pick

    def as_date(self, ts: pd.Timestamp):
        return ts if pd.api.types.is_datetime64_any_dtype(self.out[self.date_col].dtype) else ts.date()

    def put(self, rows: np.ndarray, col: str, values) -> None:
        if col in self.out and len(rows):
            self.out.iloc[rows, self.out.columns.get_loc(col)] = values

    def mark(self, rows: np.ndarray, name: str) -> None:
        self.labels[rows] = True
        self.kind[rows] = name

    def amount_spike(self) -> None:
        m_n, merch, candidates = self.m_n, self.merch, self.candidates
        regular = m_n.index[m_n >= 3].to_numpy(dtype=object)
        rows = self.take(candidates[np.isin(merch[candidates], regular)], self.budget["amount_spike"])
        self.put(
            rows,
            "amount",
            -np.round(self.m_med.reindex(merch[rows]).to_numpy() * self.rng.uniform(8, 20, len(rows)), 2),
        )
        self.mark(rows, "amount_spike")

    def atypical_merchant(self) -> None:
        m_n, seen, cats, rng, m_rows = self.m_n, self.seen, self.cats, self.rng, self.m_rows
        eligible = m_n.index[m_n >= 5]
        # a merchant whose rows are all uncategorised is not in `seen`
        eligible = eligible[eligible.isin(seen.index)]
        rows = self.take(self.candidates, self.budget["atypical_merchant"])
        keep, src = [], []
        for r in rows:
            options = (
                eligible[~seen.loc[eligible, cats[r]].to_numpy()] if cats[r] in seen.columns else eligible
            )
            if len(options) == 0:
                self.free[r] = True
                continue
            m = options[int(rng.integers(len(options)))]
            keep.append(r)
            src.append(self.er_pos[m_rows[m][int(rng.integers(len(m_rows[m])))]])
        rows, src = np.asarray(keep, dtype=np.int64), np.asarray(src, dtype=np.int64)
        self.put(rows, "amount", self.ref_amount[src])
        self.put(rows, "description", self.ref_desc[src])
        self.put(rows, "reference", self.ref_refr[src])
        self.put(rows, "merchant", self.rc["merchant"].to_numpy(dtype=object)[src])
        self.mark(rows, "atypical_merchant")

    def unusual_day(self) -> None:
        m_bday, m_n, candidates = self.m_bday, self.m_n, self.candidates
        regular = m_bday.index[(m_bday >= 1.0) & (m_n.reindex(m_bday.index) >= 5)].to_numpy(dtype=object)
        rows = self.take(candidates[np.isin(self.merch[candidates], regular)], self.budget["unusual_day"])
        moved = []
        for r in rows:
            window = self.dates.iloc[r] + pd.to_timedelta(np.arange(-10, 11), unit="D")
            weekend = window[window.day_of_week >= 5]
            moved.append(self.as_date(weekend[int(self.rng.integers(len(weekend)))]))
        self.put(rows, self.date_col, pd.Series(moved, dtype=object).to_numpy() if moved else [])
        self.mark(rows, "unusual_day")

    def new_merchant_blocks(self, name_kind: str):
        """New rows at never-seen merchants: bursts of small charges (2-8 rows on a day or the next) or
        one large charge, each copied from a random candidate row."""
        rng, out, date_col = self.rng, self.out, self.date_col
        burst = name_kind == "small_charge_burst"
        groups = max(1, int(round(self.budget[name_kind] / 5))) if burst else self.budget[name_kind]
        for _ in range(groups):
            base = int(rng.choice(self.candidates))
            size = int(rng.integers(2, 9)) if burst else 1
            name = _new_name(rng, self.taken_names)
            block = out.iloc[np.full(size, base)].copy()
            block["reference"] = name.title()
            block["description"] = f"SQ *{name.upper()}" if burst else f"WIRE TRANSFER TO {name.upper()}"
            if "merchant" in block:
                block["merchant"] = name
            if burst:
                block["amount"] = -np.round(rng.uniform(0.5, 4.99, size), 2)
                next_day = (rng.random(size) < 0.2) & (np.arange(size) > 0)
                day0 = self.dates.iloc[base]
                block[date_col] = pd.Series(
                    [self.as_date(day0 + pd.Timedelta(days=int(d))) for d in next_day], dtype=object
                ).to_numpy()
            else:
                block["amount"] = -np.round(self.q99 * rng.uniform(1, 3, size), 2)
            yield block

    def result(self, added: list[pd.DataFrame], added_kinds: list[str]):
        """(the frame with the added rows after the others, labels, kinds)."""
        out, labels, kind = self.out, self.labels, self.kind
        if added:
            extra = pd.concat(added)
            if "line_number" in extra:
                extra["line_number"] = None
            start = int(out.index.max()) + 1 if self.n else 0
            extra.index = pd.RangeIndex(start, start + len(extra))
            out = pd.concat([out, extra.astype(out.dtypes.to_dict(), errors="ignore")])
            labels = np.concatenate([labels, np.ones(len(extra), dtype=bool)])
            kind = np.concatenate([kind, np.asarray(added_kinds, dtype=object)])
        return out, labels, kind
