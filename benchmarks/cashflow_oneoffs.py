"""Cash flow and a few huge one-off amounts (issue 16, part 4): does a house deposit or a salary bonus in
the history wreck the 30-day forecast, and which robust mode of lib/ml/cashflow/robust.py protects it?

    .venv/bin/python benchmarks/cashflow_oneoffs.py [--devdata ../shared/devdata] [--end-date 2025-06-30]
        [--seed 7] [--seeds 3] [--modes none,winsor,lumpy] [--only NAME,...]

Ledgers: every dev ledger (../shared/devdata/ledgers/) with >= 1 year of daily history, converted and
read exactly as benchmarks/real_ledgers.py does (its functions, imported), and one generated ledger.
For each ledger and each robust mode (`cashflow.robust_series`: none = the series as it is; winsor =
each training window winsorised at median +- 4 x the 98th percentile of |y - median| of that window;
lumpy = the same winsorised series plus the cut-off flows' mean daily rate over the last 365 days):

- clean: cashflow.train(series, robust=mode) as the asset trains it (method chosen on the selection
  origins, MASE on the evaluation origins);
- injected: for `--seeds` seeds, 2-3 single days get an extra inflow or outflow (sign at random) of
  10-30 x the ledger's median monthly |net flow|, on days drawn between a quarter of the series and the
  last evaluation origin. train() runs on the injected series (the choice of method sees the one-offs, as
  it would in use); the chosen method is then backtested on the same evaluation origins, fitted at each
  origin on the injected past and scored on the un-injected truth after the origin (the MASE scale from
  the un-injected past too, so clean and injected MASE are on one scale). The two baselines are scored
  the same way.

`auto` is what train(robust="auto") chooses, read off the same runs: per ledger and seed, the mode of
cashflow.AUTO_MODES (none, winsor) whose chosen method had the lowest MASE on the selection origins
(ties: none first), a rule that never looks at the scored period. Coverage is the 90% interval's on
the evaluation origins (cross-validated, as train() reports it). Prints markdown.

The adoption rule (issue 16: better on injected data without hurting clean data): a mode becomes
train()'s default when its mean injected MASE is below none's and no ledger's clean MASE gets worse
than none's by more than 2%.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from real_ledgers import ONE_YEAR_DAYS, convert, write_seed_csv  # noqa: E402

from titans_assets.lib.ml import cashflow as CF  # noqa: E402
from titans_assets.lib.ml import data  # noqa: E402


def ledger_series(devdata: Path, only: list[str]) -> dict[str, pd.DataFrame]:
    """The daily net flow of every dev ledger with >= 1 year of history (name -> metric_date, net_flow)."""
    out: dict[str, pd.DataFrame] = {}
    ledgers = devdata / "ledgers"
    if not ledgers.is_dir():
        return out
    for path in sorted(p for p in ledgers.iterdir() if p.is_file()):
        if only and not any(w in path.name for w in only):
            continue
        try:
            rows, _ = convert(path)
        except ValueError as exc:
            print(f"skipped {path.name}: {exc}", file=sys.stderr)
            continue
        with tempfile.TemporaryDirectory(prefix="titans-oneoffs-") as tmp:
            write_seed_csv(rows, Path(tmp) / "raw" / "ledger.csv")
            frame = data.frame_from_csvs(Path(tmp) / "raw")
        daily = data.daily_series(frame)
        if len(daily) < ONE_YEAR_DAYS:
            print(f"{path.name}: {len(daily)} days of history (< {ONE_YEAR_DAYS}), left out", file=sys.stderr)
            continue
        out[path.name] = daily
    return out


def generated_series(end_date: dt.date, seed: int) -> tuple[str, pd.DataFrame]:
    from titans_assets.lib.generator import DEMO_YEARS, generate

    with tempfile.TemporaryDirectory(prefix="titans-oneoffs-gen-") as tmp:
        generate(
            Path(tmp) / "raw", years=DEMO_YEARS, seed=seed, end_date=end_date, labels_dir=Path(tmp) / "labels"
        )
        frame = data.frame_from_csvs(Path(tmp) / "raw")
    return f"generated ({DEMO_YEARS:g} years to {end_date}, seed {seed})", data.daily_series(frame)


def monthly_scale(series: pd.DataFrame) -> float:
    """The median over calendar months of |net flow of the month|."""
    s = series.set_index("metric_date")["net_flow"]
    return float(s.resample("MS").sum().abs().median())


def inject(
    y: np.ndarray, plan: CF.OriginPlan, scale: float, rng: np.random.Generator
) -> tuple[np.ndarray, list]:
    """2-3 single days with an extra flow of 10-30 x `scale`, sign at random, on distinct days in
    [len/4, last evaluation origin)."""
    n_spikes = int(rng.integers(2, 4))
    lo, hi = len(y) // 4, int(plan.evaluation[-1])
    days = np.sort(rng.choice(np.arange(lo, hi), size=n_spikes, replace=False))
    sizes = rng.uniform(10.0, 30.0, size=n_spikes) * scale * rng.choice([-1.0, 1.0], size=n_spikes)
    out = y.copy()
    out[days] += sizes
    return out, list(zip(days.tolist(), np.round(sizes).tolist()))


def run_mode(series: pd.DataFrame, truth: np.ndarray, mode: str) -> dict[str, float | str]:
    """train() on `series` with `mode`; its chosen method re-backtested on the evaluation origins and
    scored on `truth` (the un-injected series), with the baselines scored the same way."""
    result = CF.train(series, robust=mode, make_figures=False)
    y = series["net_flow"].to_numpy(dtype=float)
    first = pd.Timestamp(series["metric_date"].iloc[0])
    config = result.model.config
    plan = CF.origin_plan(len(y), config)
    method = result.params["method"]
    out: dict[str, float | str] = {
        "method": method,
        "select_mase": float(result.metrics.get(f"select_{method}_mase", np.nan)),
    }
    for name in (method, *CF.BASELINES):
        bt = CF.run_backtest(name, y, first, config, plan.evaluation, truth=truth)
        m = CF.evaluate(bt, y, config.level)
        key = "model" if name == method else name
        out[f"{key}_mase"] = m["mase"]
        out[f"{key}_coverage"] = m["interval_coverage"]
        out[f"{key}_total_pct"] = m["total_error_30d_pct"]
    return out


def bench_ledger(name: str, daily: pd.DataFrame, modes: list[str], seeds: list[int]) -> dict:
    series, _ = CF.daily_series(daily)
    y = series["net_flow"].to_numpy(dtype=float)
    plan = CF.origin_plan(len(y), CF.BacktestConfig())
    scale = monthly_scale(series)
    res: dict = {
        "days": len(y),
        "scale": scale,
        "clean": {},
        "injected": {m: [] for m in modes},
        "spikes": [],
    }
    for mode in modes:
        t0 = time.perf_counter()
        res["clean"][mode] = run_mode(series, y, mode)
        print(
            f"{name} clean {mode}: {res['clean'][mode]} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr
        )
    for seed in seeds:
        rng = np.random.default_rng(seed)
        y_inj, spikes = inject(y, plan, scale, rng)
        res["spikes"].append(spikes)
        injected = series.assign(net_flow=y_inj)
        for mode in modes:
            t0 = time.perf_counter()
            r = run_mode(injected, y, mode)
            res["injected"][mode].append(r)
            print(
                f"{name} seed {seed} {spikes} {mode}: {r} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr
            )
    add_auto(res, modes)
    return res


def add_auto(res: dict, modes: list[str]) -> None:
    """`auto` (train(robust="auto")): per seed, the mode of cashflow.AUTO_MODES whose chosen method
    had the lowest MASE on the selection origins (ties: AUTO_MODES order). Never the scored period."""
    auto = [m for m in CF.AUTO_MODES if m in modes]
    if not auto:
        return
    res["injected"]["auto"] = []
    for i in range(len(res["injected"][auto[0]])):
        best = min(auto, key=lambda m: (res["injected"][m][i]["select_mase"], auto.index(m)))
        res["injected"]["auto"].append({**res["injected"][best][i], "mode": best})
    best_clean = min(auto, key=lambda m: (res["clean"][m]["select_mase"], auto.index(m)))
    res["clean"]["auto"] = {**res["clean"][best_clean], "mode": best_clean}


def _f(x: float, d: int = 3) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.{d}f}"


def tables(results: dict[str, dict], modes: list[str]) -> str:
    rows = [*modes, *(["auto"] if all("auto" in r["clean"] for r in results.values()) else [])]
    lines = [
        "MASE on the evaluation origins, scored on the un-injected series (mean over seeds for injected); "
        "in brackets the 90% interval coverage:",
        "",
        "| ledger (days, median monthly abs net) | mode | clean: method, MASE (coverage) | injected: MASE "
        "(coverage) | injected: total-30d error % | injected seeds: methods | snaive(7) clean / injected | "
        "mean 28 clean / injected |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        for mode in rows:
            c, inj = r["clean"][mode], r["injected"][mode]
            mase = np.mean([x["model_mase"] for x in inj])
            cov = np.mean([x["model_coverage"] for x in inj])
            tot = np.mean([x["model_total_pct"] for x in inj])
            methods = ", ".join(x["method"] + (f"/{x['mode']}" if "mode" in x else "") for x in inj)
            label = f"{name} ({r['days']}, {r['scale']:,.0f})" if mode == rows[0] else ""
            clean_label = c["method"] + (f"/{c['mode']}" if "mode" in c else "")
            sn = (
                f"{_f(c['seasonal_naive_7_mase'])} / {_f(np.mean([x['seasonal_naive_7_mase'] for x in inj]))}"
                if mode == rows[0]
                else ""
            )
            mn = (
                f"{_f(c['mean_28_mase'])} / {_f(np.mean([x['mean_28_mase'] for x in inj]))}"
                if mode == rows[0]
                else ""
            )
            lines.append(
                f"| {label} | {mode} | {clean_label} {_f(c['model_mase'])} ({_f(c['model_coverage'], 2)}) | "
                f"{_f(mase)} ({_f(cov, 2)}) | {_f(tot, 1)} | {methods} | {sn} | {mn} |"
            )
    lines += [
        "",
        "Mean over ledgers (clean MASE / injected MASE / injected coverage):",
        "",
        "| mode | clean MASE | injected MASE | injected coverage | worst clean change vs none |",
        "|---|---|---|---|---|",
    ]
    for mode in rows:
        clean = [r["clean"][mode]["model_mase"] for r in results.values()]
        inj = [np.mean([x["model_mase"] for x in r["injected"][mode]]) for r in results.values()]
        cov = [np.mean([x["model_coverage"] for x in r["injected"][mode]]) for r in results.values()]
        worst = (
            max(
                r["clean"][mode]["model_mase"] / r["clean"]["none"]["model_mase"] - 1
                for r in results.values()
            )
            if "none" in modes
            else float("nan")
        )
        lines.append(
            f"| {mode} | {_f(np.mean(clean))} | {_f(np.mean(inj))} | {_f(np.mean(cov), 3)} | {worst:+.1%} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--devdata", type=Path, default=ROOT.parent / "shared" / "devdata")
    ap.add_argument("--end-date", default="2025-06-30", help="the generated ledger's last day")
    ap.add_argument("--seed", type=int, default=7, help="the generated ledger's seed")
    ap.add_argument("--seeds", type=int, default=3, help="injection draws per ledger (seeds 1..N)")
    ap.add_argument("--modes", default=",".join(CF.ROBUST_MODES))
    ap.add_argument(
        "--only", default="", help="comma-separated substrings of ledger names ('generated' included)"
    )
    args = ap.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    only = [w for w in args.only.split(",") if w]
    started = time.perf_counter()
    series = ledger_series(args.devdata, only)
    if not series:
        print(
            f"no dev ledger with >= {ONE_YEAR_DAYS} days under {args.devdata / 'ledgers'}: only generated data"
        )
    if not only or any(w in "generated" for w in only):
        name, daily = generated_series(dt.date.fromisoformat(args.end_date), args.seed)
        series[name] = daily
    seeds = list(range(1, args.seeds + 1))
    results = {name: bench_ledger(name, daily, modes, seeds) for name, daily in series.items()}
    print(
        f"{len(results)} ledgers, {len(seeds)} injection seeds, modes {', '.join(modes)}; "
        f"{time.perf_counter() - started:.0f} s; {platform.machine()}, {os.cpu_count()} cores, load "
        f"{os.getloadavg()[0]:.1f}; {dt.date.today()}; `.venv/bin/python benchmarks/cashflow_oneoffs.py "
        f"--end-date {args.end_date} --seed {args.seed} --seeds {args.seeds} --modes {args.modes}`\n"
    )
    print(tables(results, modes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
