"""Transfer hints (int_transfer_hints), part by part: a strong hint's regex on every description vs only
where the lower-cased description holds one of the hint's words; the weak hints as a regex vs as plain
words; the account's last digits per row vs per account. Same rows, same server, same process.

    .venv/bin/python benchmarks/transfer_hints.py                       # 1M generated rows, embedded server
    .venv/bin/python benchmarks/transfer_hints.py --rows 200000 --database-url postgresql://postgres@127.0.0.1:5432/postgres

Rows: the generator's ledger (every account, transfers included) and the descriptions of every ledger
and bank file under --devdata that the readers accept (the account: the file's name), repeated to
--rows. Each part of the model is timed as it was computed before and as it is now, interleaved, and
the two must count the same rows. Prints markdown for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from titans_assets.lib import generator, transfers  # noqa: E402
from titans_assets.lib.csv_contract import parse_csv  # noqa: E402
from titans_assets.lib.db import Database, get_database  # noqa: E402


def generated_rows(rows: int) -> list[tuple[str, str]]:
    """(description, account) of a generated ledger of `rows` rows (every account, CSV), transfers included."""
    with tempfile.TemporaryDirectory() as tmp:
        s = generator.generate(
            Path(tmp) / "raw",
            rows=rows,
            seed=3,
            end_date=generator.DEMO_END_DATE,
            accounts=(*generator.DEFAULT_ACCOUNTS, "business_savings"),
        )
        return [
            (d, path.stem)
            for path in sorted(s.out_dir.glob("*.csv"))
            for d in parse_csv(path.read_bytes()).rows["description"].fillna("").astype(str)
        ]


def devdata_rows(folder: Path) -> list[tuple[str, str]]:
    """(description, account) of every file under `folder` the readers accept (the account: its name)."""
    from titans_assets.lib import formats

    out: list[tuple[str, str]] = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            rows, _ = formats.read(path.name, path.read_bytes()).typed()
        except Exception:  # noqa: BLE001, S112 - not a file the readers accept (README, provenance)
            continue
        out += [(d or "", path.stem) for d in rows.column("description").to_pylist()]
    return out


# Each part of int_transfer_hints: (name, as the model computed it before, as it computes it now). Every
# expression is a count over hint_bench (description, account) whose two forms must agree.
def parts(hints: dict) -> list[tuple[str, str, str]]:
    strong, weak = transfers.postgres_patterns(hints)
    words = sorted({w for h in hints["strong"] for w in h["words"]})
    like = lambda ws: "array[" + ",".join(f"'%{w}%'" for w in ws) + "]"  # noqa: E731 - words hold no quote
    digits = "case when length({n}) >= 4 then right({n}, 4) else '' end"
    per_row = digits.format(n="regexp_replace(account, '[^0-9]', '', 'g')")
    per_account = digits.format(n="n.n")
    return [
        (
            "strong hint: regex on every row / only where a word is present",
            f"select count(*) filter (where description ~* '{strong}') from hint_bench",
            f"select count(*) filter (where case when lower(description) like any ({like(words)})"
            f" then description ~* '{strong}' else false end) from hint_bench",
        ),
        (
            "weak hint: regex / plain words",
            f"select count(*) filter (where description ~* '{weak}') from hint_bench",
            f"select count(*) filter (where lower(description) like any ({like(hints['weak'])})) from hint_bench",
        ),
        (
            "account digits: per row / per account",
            f"select count(*) filter (where {per_row} <> '') from hint_bench",
            "with n as materialized (select account, regexp_replace(account, '[^0-9]', '', 'g') as n"
            " from (select distinct account from hint_bench) as a)"
            f" select count(*) filter (where {per_account} <> '') from hint_bench as r left join n on n.account = r.account",
        ),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--devdata", type=Path, default=ROOT.parent / "shared" / "devdata")
    ap.add_argument("--database-url", default=None, help="default: the configured warehouse")
    args = ap.parse_args()

    corpora = {"generated": generated_rows(args.rows)}
    if args.devdata.is_dir():
        real = devdata_rows(args.devdata)
        if real:
            corpora["devdata"] = (real * (args.rows // len(real) + 1))[: args.rows]
    db = Database(args.database_url) if args.database_url else get_database()
    print(
        f"# transfer hints, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} cores,"
        f" Python {platform.python_version()}, load average {os.getloadavg()[0]:.1f}"
    )
    print(f"command: python benchmarks/{Path(__file__).name} --rows {args.rows} --reps {args.reps}\n")
    print("| corpus | rows | part | count | before s (median) | now s (median) | ratio |")
    print("|---|---:|---|---:|---:|---:|---:|")
    with db.connect(autocommit=True) as conn, conn.cursor() as cur:
        for name, rows in corpora.items():
            cur.execute("create temporary table if not exists hint_bench (description text, account text)")
            cur.execute("truncate hint_bench")
            tsv = "".join(f"{_tsv(d)}\t{_tsv(a)}\n" for d, a in rows)
            cur.copy_from(io.StringIO(tsv), "hint_bench", columns=("description", "account"))
            cur.execute("analyze hint_bench")
            for part, before, now in parts(transfers.hint_vocabulary()):
                times: dict[str, list[float]] = {before: [], now: []}
                counts = set()
                for _ in range(args.reps):
                    for sql in (before, now):
                        t0 = time.perf_counter()
                        cur.execute(sql)
                        counts.add(cur.fetchone()[0])
                        times[sql].append(time.perf_counter() - t0)
                assert len(counts) == 1, f"{part}: the two forms disagree ({counts})"
                a, b = statistics.median(times[before]), statistics.median(times[now])
                print(
                    f"| {name} | {len(rows):,} | {part} | {counts.pop():,} | {a:.3f} | {b:.3f} | {a / b:.1f}x |"
                )


def _tsv(text: str) -> str:
    return re.sub(r"[\\\t\r\n]", " ", text)


if __name__ == "__main__":
    main()
