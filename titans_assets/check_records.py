"""What the Dagster instance says about the checks: each check's latest state (not run, running,
skipped, passed, warning, failed), with the coded line of a failure and the reason for a skip. Read by
`titans status`, the dashboard and the sensors; no run is started here."""

from __future__ import annotations

import socket

import dagster as dg

from titans_assets.lib.errors import Failure, from_text


def latest_check_records(instance: dg.DagsterInstance, check_keys) -> dict:
    """The latest execution record of each check, in one event-log query."""
    return dict(instance.event_log_storage.get_latest_asset_check_execution_by_key(list(check_keys)))


def check_record_state(record, run: dg.DagsterRun | None = None) -> str:
    """The latest execution record of a check as a state: not run / running / skipped / passed / warning /
    failed. A planned check whose run has ended (or whose run's process is gone) never ran: skipped."""
    if record is None:
        return "not run"
    evaluation = record.evaluation
    if not isinstance(evaluation, dg.AssetCheckEvaluation):  # planned: its run executes it, or stopped first
        return "running" if run is not None and run_is_active(run) else "skipped"
    return check_state(evaluation)


def run_is_active(run: dg.DagsterRun) -> bool:
    """Not finished, and, for a run of this CLI (executed in its process) on this host, that process
    still lives."""
    if run.is_finished:
        return False
    pid = run.tags.get("titans/pid")
    if pid and pid.isdigit() and run.tags.get("titans/host") == socket.gethostname():
        import psutil

        return psutil.pid_exists(int(pid))
    return True


def check_statuses(instance: dg.DagsterInstance, check_keys) -> dict[str, dict]:
    """`asset:check` -> status, when, run id, and: for a failed check its coded line, rule, file and line
    (lib/errors.check_failure); for a skipped one, why (what failed upstream in its run)."""
    records = latest_check_records(instance, check_keys)
    run_ids = sorted({r.run_id for r in records.values() if r is not None})
    runs = {r.run_id: r for r in instance.get_runs(dg.RunsFilter(run_ids=run_ids))} if run_ids else {}
    out: dict[str, dict] = {}
    failed_in: dict[str, list[str]] = {}
    for key in sorted(check_keys, key=lambda k: k.to_user_string()):
        name, record = key.to_user_string(), records.get(key)
        state = check_record_state(record, runs.get(record.run_id) if record else None)
        entry = {
            "status": state,
            "at": record.create_timestamp if record else None,
            "run_id": record.run_id if record else None,
        }
        if state == "failed":
            failure = from_check_record(name, record)
            entry |= {"code": failure.code, "message": failure.line(), **_details(record)}
            failed_in.setdefault(record.run_id, []).append(failure.line())
        out[name] = entry
    reasons: dict[str, str] = {}
    for entry in out.values():
        if entry["status"] != "skipped":
            continue
        run_id = entry["run_id"]
        if run_id not in reasons:
            reasons[run_id] = _skip_reason(instance, runs.get(run_id), failed_in.get(run_id, []))
        entry["reason"] = reasons[run_id]
    return out


def from_check_record(name: str, record) -> Failure:
    from titans_assets.lib.errors import check_failure

    return check_failure(name, plain_metadata(record.evaluation.metadata))


def _details(record) -> dict:
    from titans_assets.lib.errors import check_details

    d = check_details(plain_metadata(record.evaluation.metadata))
    return {"rule": d["rule"], "file": d["file"], "line": d["line"]}


def _skip_reason(instance: dg.DagsterInstance, run: dg.DagsterRun | None, failed_checks: list[str]) -> str:
    """Why the checks planned in `run` never ran: the run's first failure, coded."""
    if run is None:
        return "its run was deleted"
    short = run.run_id[:8]
    if failed_checks:
        return f"run {short} stopped upstream: {failed_checks[0]}"
    if not run.is_finished:
        return f"run {short} ended with its process before finishing (the database or the process died)"
    records = instance.get_records_for_run(
        run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE, limit=1
    ).records
    if records:
        error = records[0].event_log_entry.dagster_event.event_specific_data.error
        return f"run {short} stopped upstream: {from_text(*error_with_causes(error)).line()}"
    return f"run {short} ended ({run.status.value}) before these checks ran"


def untrained_reasons(instance: dg.DagsterInstance, model_keys) -> dict[str, str]:
    """Per model key (`category`, ...): why its latest challenger did not train (a cold start, too little
    data), read from that asset's latest materialization; models whose latest challenger trained are
    left out."""
    keys = {k: dg.AssetKey(["ml", f"{k}_challenger"]) for k in model_keys}
    latest = instance.get_latest_materialization_events(list(keys.values()))
    out = {}
    for key, asset_key in keys.items():
        event = latest.get(asset_key)
        meta = (
            plain_metadata(event.asset_materialization.metadata)
            if event and event.asset_materialization
            else {}
        )
        if meta.get("trained") is False and meta.get("reason"):
            out[key] = str(meta["reason"])
    return out


def plain_metadata(metadata) -> dict:
    """Dagster metadata values as plain Python values."""
    return {k: getattr(v, "value", v) for k, v in (metadata or {}).items()}


def error_with_causes(error) -> tuple[str, str]:
    """(class name, message with the causes' messages) of a SerializableErrorInfo: what lib/errors reads."""
    names, parts, seen = [], [], error
    while seen is not None and len(parts) < 10:
        names.append(seen.cls_name or "")
        parts.append(f"{seen.cls_name}: {seen.message}" if parts else seen.message)
        seen = seen.cause or getattr(seen, "context", None)
    return (names[0] or "Error", "\n".join(parts))


def check_state(evaluation) -> str:
    """passed / warning (a WARN-severity failure: shown, not blocking) / failed."""
    if evaluation.passed:
        return "passed"
    return "warning" if evaluation.severity == dg.AssetCheckSeverity.WARN else "failed"
