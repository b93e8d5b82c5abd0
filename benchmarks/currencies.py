"""Two currencies, one household: should the category and amount models train on amounts as they are
(each row in its own currency, the status quo), on amounts converted to the reporting currency
(fct_transactions.amount_reporting), or one model per currency? Prints a markdown table.

    .venv/bin/python benchmarks/currencies.py [--seeds 1,2,3] [--years 2]

Each seed generates the default three accounts with personal_card in EUR (its purchases priced in
EUR at the generator's nominal 1.08 USD, written as a CSV with a Currency column); EUR -> USD rates
drift month by month (1.05 .. 1.11, a seeded walk), as a user's seeds/fx_rates.csv would hold them.
The last 20% of days are held out; every variant trains on the days before them (the module's own
train(), which selects and refits as the training assets do) and predicts the held-out rows with
the model it returns. All errors are in USD: a prediction for a EUR row is converted with that
month's rate (for the as-is variant too: its prediction is in the row's own units).

    as_is       one model, amounts in their own currency (EUR and USD numbers mixed)
    converted   one model, every amount in USD (amount_reporting)
    per_currency  a model per currency on its own rows (the EUR one has ~1/3 of the data)
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from titans_assets.lib.csv_contract import CANONICAL_COLUMNS  # noqa: E402

EUR_ACCOUNT = "personal_card"
SEED_HEADER = CANONICAL_COLUMNS


def ledger(tmp: Path, seed: int, years: float) -> pd.DataFrame:
    """The generated two-currency ledger in the warehouse shape (lib/ml/data.frame_from_csvs), with
    `currency` per row. The EUR account's CSV profile file is rewritten as a seed CSV first (same
    rows, amounts and categories) so that the one reader of the models' benchmarks reads it."""
    from titans_assets.lib import formats
    from titans_assets.lib.generator import DEMO_END_DATE, generate
    from titans_assets.lib.ml import data

    landing = tmp / "raw"
    generate(
        landing,
        years=years,
        seed=seed,
        end_date=DEMO_END_DATE,
        messy_rate=0,
        format={EUR_ACCOUNT: "csv-profile:generic"},
        currencies={EUR_ACCOUNT: "EUR"},
    )
    path = landing / f"{EUR_ACCOUNT}.csv"
    rows, _ = formats.read(path.name, path.read_bytes()).typed()
    assert set(rows.column("currency").to_pylist()) == {"EUR"}
    t = rows.to_pandas()
    amount = t["amount"].astype(str)
    seed_csv = pd.DataFrame(
        {
            "Date": pd.to_datetime(t["txn_date"]).dt.strftime("%Y-%m-%d"),
            "Type": np.where(t["amount"].astype(float) < 0, "Expense", "Income"),
            "Description": t["description"],
            "Amount": amount,
            "Category": t["category"].fillna(""),
            "Payment Method": "debit_card",
            "Status": "paid",
            "Reference": t["reference"].fillna(""),
            "Receipt URL": "",
        }
    )
    seed_csv.to_csv(path, index=False, columns=list(SEED_HEADER))
    frame = data.frame_from_csvs(landing)
    frame["currency"] = np.where(frame["account"] == EUR_ACCOUNT, "EUR", "USD")
    return frame


def monthly_rates(frame: pd.DataFrame, seed: int) -> pd.Series:
    months = pd.period_range(frame["txn_date"].min(), frame["txn_date"].max(), freq="M")
    rng = np.random.default_rng(seed)
    walk = np.clip(1.08 + np.cumsum(rng.normal(0, 0.01, len(months))), 1.05, 1.11)
    return pd.Series(np.round(walk, 4), index=months)


def to_usd(frame: pd.DataFrame, values: np.ndarray, rates: pd.Series) -> np.ndarray:
    rate = np.where(
        frame["currency"].to_numpy() == "EUR",
        rates.reindex(frame["txn_date"].dt.to_period("M")).to_numpy(),
        1.0,
    )
    return np.asarray(values, dtype=float) * rate


def score(train: pd.DataFrame, test: pd.DataFrame, usd_rate_of: pd.DataFrame, rates: pd.Series) -> dict:
    """Train both models on `train`, predict `test`: amount MAE (USD) over expense rows, category
    accuracy over expense rows with a label. `usd_rate_of` is `test` as it is (EUR rows in EUR), to
    convert predictions made in the rows' own units."""
    from titans_assets.lib.ml import amount, category

    out = {}
    started = time.perf_counter()
    a = amount.train(train)
    exp = test["category"].notna() & (test["txn_type"] == "Expense")
    pred = a.model.predict(test[exp], explain=False)["predicted_amount"].to_numpy()
    out["amount_pred_usd"] = pred  # converted by the caller when the variant trained in own units
    out["amount_idx"] = test.index[exp]
    c = category.train(train)
    top = c.model.predict(test[exp], top_k=1)
    out["category_hit"] = (
        top.iloc[:, 0].astype(str).to_numpy() == test.loc[exp, "category"].astype(str).to_numpy()
    )
    out["seconds"] = time.perf_counter() - started
    return out


def run(seed: int, years: float) -> dict[str, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        frame = ledger(Path(tmp), seed, years)
    rates = monthly_rates(frame, seed)
    days = np.sort(frame["txn_date"].unique())
    cut = days[int(len(days) * 0.8)]
    converted = frame.assign(amount=np.round(to_usd(frame, frame["amount"], rates), 2))
    truth_usd = pd.Series(np.abs(converted["amount"].to_numpy()), index=frame.index)
    train_mask, test_mask = frame["txn_date"] < cut, frame["txn_date"] >= cut
    results = {}
    for name, data, own_units in (("as_is", frame, True), ("converted", converted, False)):
        r = score(data[train_mask], data[test_mask], frame[test_mask], rates)
        idx = r["amount_idx"]
        pred = to_usd(frame.loc[idx], r["amount_pred_usd"], rates) if own_units else r["amount_pred_usd"]
        results[name] = {
            "mae": float(np.mean(np.abs(pred - truth_usd.loc[idx].to_numpy()))),
            "acc": float(r["category_hit"].mean()),
            "n": len(idx),
            "seconds": r["seconds"],
            "eur_mae": float(
                np.mean(
                    np.abs(pred - truth_usd.loc[idx].to_numpy())[
                        frame.loc[idx, "currency"].to_numpy() == "EUR"
                    ]
                )
            ),
        }
    errs, hits, eur_errs, secs = [], [], [], 0.0
    for cur in ("USD", "EUR"):
        part = frame[frame["currency"] == cur]
        r = score(part[train_mask[part.index]], part[test_mask[part.index]], part, rates)
        idx = r["amount_idx"]
        e = np.abs(to_usd(frame.loc[idx], r["amount_pred_usd"], rates) - truth_usd.loc[idx].to_numpy())
        errs.append(e)
        hits.append(r["category_hit"])
        secs += r["seconds"]
        if cur == "EUR":
            eur_errs.append(e)
    results["per_currency"] = {
        "mae": float(np.mean(np.concatenate(errs))),
        "acc": float(np.mean(np.concatenate(hits))),
        "n": sum(len(e) for e in errs),
        "seconds": secs,
        "eur_mae": float(np.mean(np.concatenate(eur_errs))),
    }
    results["rows"] = {
        "total": len(frame),
        "eur": int((frame["currency"] == "EUR").sum()),
        "cut": str(cut)[:10],
    }
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--years", type=float, default=2.0)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    for seed in seeds:
        r = run(seed, args.years)
        print(f"seed {seed}: {r['rows']}", file=sys.stderr, flush=True)
        for name in ("as_is", "converted", "per_currency"):
            rows.append({"seed": seed, "variant": name, **r[name]})
            print(
                f"  {name:<13} amount MAE {r[name]['mae']:8.3f} USD (EUR rows {r[name]['eur_mae']:8.3f})"
                f"  category accuracy {r[name]['acc']:.4f}  ({r[name]['seconds']:.0f}s)",
                file=sys.stderr,
                flush=True,
            )
    df = pd.DataFrame(rows)
    mean = df.groupby("variant")[["mae", "eur_mae", "acc", "seconds"]].mean()
    print(
        f"\n{dt.date.today()} seeds {args.seeds}, {args.years:g} years, personal_card in EUR; held-out last 20% of days\n"
    )
    print("| variant | amount MAE (USD) | amount MAE, EUR rows (USD) | category accuracy | train s |")
    print("|---|---|---|---|---|")
    for name in ("as_is", "converted", "per_currency"):
        m = mean.loc[name]
        print(f"| {name} | {m['mae']:.3f} | {m['eur_mae']:.3f} | {m['acc']:.4f} | {m['seconds']:.0f} |")


if __name__ == "__main__":
    main()
