"""The pipeline's state as Prometheus metrics, read from where it already lives (`titans metrics`).

`PipelineCollector` reads the warehouse (`raw.files`, `raw.transactions`), Dagster's storage in the
same database and the MLflow registry at each scrape (cached); it holds no state. A missing table
gives no series for that part, and `titans_metrics_source_up` says which source failed.

Design notes (why an exporter of its own, the sources, every series): docs/design-notes.md#titans_assetslibobservabilitypipelinepy
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("titans.metrics")

RETRAIN_SIGNAL_KEY = (
    '["ml", "retrain_signal"]'  # Dagster's storage form of AssetKey(["ml", "retrain_signal"])
)
CHECK_STATES = ("passed", "warning", "failed")

HELP = {
    "titans_file_rows_loaded": "rows of the file loaded into raw.transactions",
    "titans_file_rows_quarantined": "rows of the file quarantined in raw.quarantine",
    "titans_file_rejected": "1 when the whole file was rejected (raw.files.file_error)",
    "titans_ingest_last_success_timestamp_seconds": "when a file was last loaded without being rejected",
    "titans_data_newest_transaction_timestamp_seconds": "date of the newest loaded transaction (midnight UTC)",
    "titans_data_freshness_seconds": "age of the newest loaded transaction, against the platform's today",
    "titans_check_status": "1 for the latest outcome of each asset check (status label)",
    "titans_checks": "asset checks by latest outcome",
    "titans_pipeline_last_run_timestamp_seconds": "end of the latest Dagster run, by status",
    "titans_retrain_signal_pending": "1 when the latest ml/retrain_signal asks for a retrain",
    "titans_retrain_signal_timestamp_seconds": "when ml/retrain_signal was last materialized",
    "titans_champion_version": "registry version behind NAME@champion",
    "titans_champion_metric": "the champion's primary metric on its holdout",
    "titans_champion_baseline_metric": "the best baseline's primary metric on the same holdout",
    "titans_champion_metric_higher_is_better": "1 when a higher primary metric is better",
    "titans_last_training_timestamp_seconds": "start of the latest training run in the registry",
    "titans_metrics_source_up": "1 when the source answered at the last read",
}


@dataclass(frozen=True)
class Sample:
    name: str
    labels: tuple[tuple[str, str], ...]
    value: float


def sample(name: str, value: float, **labels: Any) -> Sample:
    assert name in HELP, name
    return Sample(name, tuple((k, "" if v is None else str(v)) for k, v in labels.items()), float(value))


# ----------------------------------------------------------------------------------------- pure rules
def midnight_utc(day: dt.date) -> float:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()


def freshness_seconds(newest: dt.date, as_of: dt.date | None, now: float) -> float:
    """Age of a transaction dated `newest`: from its midnight to the platform's today (TITANS_AS_OF's
    midnight when set, else `now`); never negative."""
    reference = midnight_utc(as_of) if as_of is not None else now
    return max(0.0, reference - midnight_utc(newest))


def check_outcome(execution_status: str, severity: str | None) -> str | None:
    """Dagster's execution status and severity -> passed / warning / failed (None: not evaluated)."""
    status = (execution_status or "").upper()
    if status == "SUCCEEDED":
        return "passed"
    if status == "FAILED":
        return "warning" if (severity or "").upper().endswith("WARN") else "failed"
    return None


def find_metadata_value(event: Any, key: str) -> Any:
    """The value of metadata entry `key` anywhere in a serialized Dagster event (None when absent)."""
    stack = [event]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            meta = node.get("metadata")
            if isinstance(meta, dict) and key in meta:
                entry = meta[key]
                return entry.get("value") if isinstance(entry, dict) else entry
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return None


def file_samples(rows: Iterable[tuple]) -> list[Sample]:
    """(source_file, account, rows_loaded, rows_quarantined, loaded_at, file_error) -> series."""
    out, last_ok = [], None
    for source_file, account, loaded, quarantined, loaded_at, file_error in rows:
        labels = {"file": source_file, "account": account}
        out.append(sample("titans_file_rows_loaded", loaded or 0, **labels))
        out.append(sample("titans_file_rows_quarantined", quarantined or 0, **labels))
        out.append(sample("titans_file_rejected", 1 if file_error else 0, **labels))
        if not file_error and loaded_at is not None:
            ts = loaded_at.timestamp()
            last_ok = ts if last_ok is None else max(last_ok, ts)
    if last_ok is not None:
        out.append(sample("titans_ingest_last_success_timestamp_seconds", last_ok))
    return out


def check_samples(rows: Iterable[tuple]) -> list[Sample]:
    """(asset_key JSON, check name, execution status, severity) of each check's latest evaluation."""
    out, counts = [], dict.fromkeys(CHECK_STATES, 0)
    for asset_key, check, status, severity in rows:
        outcome = check_outcome(status, severity)
        if outcome is None:
            continue
        try:
            asset = "/".join(json.loads(asset_key))
        except (TypeError, ValueError):
            asset = str(asset_key)
        sev = "warn" if (severity or "").upper().endswith("WARN") else "error"
        out.append(sample("titans_check_status", 1, asset=asset, check=check, severity=sev, status=outcome))
        counts[outcome] += 1
    out += [sample("titans_checks", n, status=s) for s, n in counts.items()]
    return out


def champion_samples(summary: dict[str, dict]) -> list[Sample]:
    """From `status.champion_summary`: version, primary metric and best baseline per model."""
    out = []
    for key, c in summary.items():
        if not c.get("champion"):
            continue
        out.append(
            sample(
                "titans_champion_version",
                int(c["champion"]) if str(c["champion"]).isdigit() else 0,
                model=key,
                kind=c.get("model_kind") or "model",
            )
        )
        metric = c.get("primary_metric")
        if metric and c.get("value") is not None:
            out.append(sample("titans_champion_metric", c["value"], model=key, metric=metric))
            out.append(
                sample(
                    "titans_champion_metric_higher_is_better",
                    1 if c.get("higher_is_better") else 0,
                    model=key,
                    metric=metric,
                )
            )
        if metric and c.get("best_baseline_value") is not None:
            out.append(
                sample(
                    "titans_champion_baseline_metric",
                    c["best_baseline_value"],
                    model=key,
                    metric=metric,
                    baseline=c.get("best_baseline") or "",
                )
            )
    return out


# ----------------------------------------------------------------------------------------- reading
def read_warehouse(db, as_of: dt.date | None, now: float) -> tuple[list[Sample], dict[str, bool]]:
    """The warehouse's and Dagster's part, on one connection (each part skipped when its table is missing)."""
    out: list[Sample] = []
    up = {"warehouse": False, "dagster": False}
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT to_regclass('raw.files') IS NOT NULL, to_regclass('raw.transactions') IS NOT NULL,"
            " to_regclass('public.asset_check_executions') IS NOT NULL,"
            " to_regclass('public.runs') IS NOT NULL, to_regclass('public.event_logs') IS NOT NULL"
        )
        has_files, has_txns, has_checks, has_runs, has_events = cur.fetchone()
        if has_files:
            cur.execute(
                "SELECT source_file, account, rows_loaded, rows_quarantined, loaded_at, file_error"
                " FROM raw.files ORDER BY source_file"
            )
            out += file_samples(cur.fetchall())
        if has_txns:
            cur.execute("SELECT max(txn_date) FROM raw.transactions")
            newest = cur.fetchone()[0]
            if newest is not None:
                out.append(sample("titans_data_newest_transaction_timestamp_seconds", midnight_utc(newest)))
                out.append(sample("titans_data_freshness_seconds", freshness_seconds(newest, as_of, now)))
        up["warehouse"] = bool(has_files and has_txns)
        if has_checks:
            cur.execute(
                "SELECT DISTINCT ON (asset_key, check_name) asset_key, check_name, execution_status,"
                " evaluation_event::json -> 'dagster_event' -> 'event_specific_data' -> 'severity' ->> '__enum__'"
                " FROM asset_check_executions WHERE execution_status IN ('SUCCEEDED', 'FAILED')"
                " ORDER BY asset_key, check_name, id DESC"
            )
            out += check_samples(cur.fetchall())
        if has_runs:
            cur.execute("SELECT status, max(end_time) FROM runs WHERE end_time IS NOT NULL GROUP BY status")
            out += [
                sample("titans_pipeline_last_run_timestamp_seconds", t, status=s.lower())
                for s, t in cur.fetchall()
            ]
        if has_events:
            cur.execute(
                "SELECT event, timestamp FROM event_logs WHERE asset_key = %s"
                " AND dagster_event_type = 'ASSET_MATERIALIZATION' ORDER BY id DESC LIMIT 1",
                (RETRAIN_SIGNAL_KEY,),
            )
            row = cur.fetchone()
            pending = False
            if row is not None:
                try:
                    pending = bool(find_metadata_value(json.loads(row[0]), "retrain"))
                except ValueError:
                    pending = False
                out.append(
                    sample(
                        "titans_retrain_signal_timestamp_seconds", row[1].replace(tzinfo=dt.UTC).timestamp()
                    )
                )
            out.append(sample("titans_retrain_signal_pending", 1 if pending else 0))
        up["dagster"] = bool(has_checks and has_runs and has_events)
    return out, up


def read_registry(registry) -> list[Sample]:
    """Champions (version, kind, primary metric, best baseline) and the latest training's start."""
    from titans_assets.lib.status import champion_summary

    out = champion_samples(champion_summary(registry))
    runs = registry._call(
        "searching runs",
        registry.client.search_runs,
        [registry.experiment_id()],
        filter_string="tags.`titans.stage` = 'challenger'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if runs:
        out.append(sample("titans_last_training_timestamp_seconds", runs[0].info.start_time / 1000.0))
    return out


@dataclass
class _Cached:
    seconds: float
    read: Callable[[], tuple[list[Sample], dict[str, bool]]]
    at: float = -1e18
    value: tuple[list[Sample], dict[str, bool]] = field(default_factory=lambda: ([], {}))


class PipelineCollector:
    """A prometheus_client collector: each source is read at most once per its cache period, and a
    source that fails reports `titans_metrics_source_up{source} 0` (its cause goes to the log once)."""

    def __init__(
        self,
        settings,
        db,
        cache_seconds: float = 15.0,
        registry_seconds: float = 60.0,
        clock: Callable[[], float] = time.time,
    ):
        self.settings = settings
        self.db = db
        self.clock = clock
        self._lock = threading.Lock()
        self._registry = None
        self._last_error: dict[str, str] = {}
        self._parts = [
            _Cached(cache_seconds, self._read_warehouse),
            _Cached(registry_seconds, self._read_registry),
        ]

    def _read_warehouse(self):
        return read_warehouse(self.db, self.settings.as_of, self.clock())

    def _read_registry(self):
        if self._registry is None:
            from titans_assets.lib.ml.tracking import Registry

            self._registry = Registry.from_settings(self.settings, self.db)
        try:
            return read_registry(self._registry), {"registry": True}
        except Exception:
            self._registry = None  # build it again next time (the store may come back)
            raise

    def samples(self) -> list[Sample]:
        out: list[Sample] = []
        up: dict[str, bool] = {}
        with self._lock:
            now = time.monotonic()
            for part in self._parts:
                if now - part.at >= part.seconds:
                    try:
                        part.value = part.read()
                        self._last_error.pop(part.read.__name__, None)
                    except Exception as exc:
                        sources = (
                            ("registry",) if part.read == self._read_registry else ("warehouse", "dagster")
                        )
                        part.value = ([], dict.fromkeys(sources, False))
                        text = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:200]}"
                        if self._last_error.get(part.read.__name__) != text:
                            from titans_assets.lib.serving.errors import scrub

                            log.warning("reading pipeline metrics failed (%s)", scrub(text))
                            self._last_error[part.read.__name__] = text
                    part.at = now
                out += part.value[0]
                up |= part.value[1]
        out += [sample("titans_metrics_source_up", 1 if ok else 0, source=s) for s, ok in sorted(up.items())]
        return out

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        families: dict[str, GaugeMetricFamily] = {}
        for s in self.samples():
            fam = families.get(s.name)
            if fam is None:
                fam = families[s.name] = GaugeMetricFamily(
                    s.name, HELP[s.name], labels=[k for k, _ in s.labels]
                )
            fam.add_metric([v for _, v in s.labels], s.value)
        yield from families.values()

    def describe(self):  # no describe-time read: registering the collector must not query anything
        return []
