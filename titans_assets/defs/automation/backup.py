"""The scheduled backup: `titans backup` as a Dagster job, nightly, OFF by default.

Turn it on in the Dagster UI (Automation -> scheduled_backup) or with
`titans dagster schedule start scheduled_backup -w workspace.yaml`. Each run writes a dated archive
(lib/backup.py) into TITANS_BACKUP_DIR, read when the schedule ticks and when the run starts (never at
import); without it the tick is skipped and says why. TITANS_BACKUP_KEEP (default 7) dated archives
are kept there, older ones removed after a backup succeeded.
"""

import os
from pathlib import Path

import dagster as dg

from titans_assets.lib.backup import Summary, stale_backups, write_backup
from titans_assets.resources import WarehouseResource

BACKUP_DIR_ENV = "TITANS_BACKUP_DIR"
BACKUP_KEEP_ENV = "TITANS_BACKUP_KEEP"
DEFAULT_KEEP = 7


def backup_settings(environ) -> tuple[Path | None, int]:
    """(destination folder or None, how many archives to keep) from the environment."""
    dest = (environ.get(BACKUP_DIR_ENV) or "").strip()
    keep = (environ.get(BACKUP_KEEP_ENV) or "").strip()
    try:
        n = int(keep) if keep else DEFAULT_KEEP
    except ValueError:
        raise ValueError(f"E003 invalid input: {BACKUP_KEEP_ENV}={keep!r} is not a whole number") from None
    return (Path(dest) if dest else None), n


@dg.op(
    description="Write one backup archive (databases, MLflow artifacts, Dagster's home) into "
    f"{BACKUP_DIR_ENV}, then keep the newest {BACKUP_KEEP_ENV}."
)
def write_backup_archive(context: dg.OpExecutionContext, warehouse: WarehouseResource) -> str:
    dest, keep = backup_settings(os.environ)
    if dest is None:
        raise dg.Failure(f"E003 invalid input: {BACKUP_DIR_ENV} is not set: name the folder backups go to")
    dest.mkdir(parents=True, exist_ok=True)
    path, manifest = write_backup(warehouse.settings(), warehouse.database(), dest)
    s = Summary.of(manifest)
    context.log.info(f"backup written to {path}: {s.files} files, {s.tables} tables, {s.rows} rows")
    for name in stale_backups((p.name for p in dest.iterdir()), keep):
        (dest / name).unlink(missing_ok=True)
        context.log.info(f"removed the old backup {name} (keeping {keep})")
    return str(path)


@dg.job(name="backup", description="`titans backup` into TITANS_BACKUP_DIR.")
def backup_job():
    write_backup_archive()


@dg.schedule(
    name="scheduled_backup",
    job=backup_job,
    cron_schedule="30 3 * * *",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description=f"Nightly at 03:30: a backup archive into {BACKUP_DIR_ENV} (off by default; "
    "skipped while the variable is unset).",
)
def scheduled_backup(context: dg.ScheduleEvaluationContext):
    dest, _ = backup_settings(os.environ)
    if dest is None:
        return dg.SkipReason(f"{BACKUP_DIR_ENV} is not set: no backup destination")
    return dg.RunRequest(tags={"titans/trigger": "scheduled_backup"})
