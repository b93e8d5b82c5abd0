"""Backups that restore: the archive layout, its manifest and checksums, and the rules of a restore.

Plain Python (no Dagster); `write_backup` / `restore_backup` are what `titans backup` / `titans
restore` (commands/backup.py) call. A restore verifies every checksum before it changes anything,
and checks the tables' hashes after.

Design notes (the archive's members): docs/design-notes.md#titans_assetslibbackuppy
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

FORMAT = "titans-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
WAREHOUSE_DUMP = "db/warehouse.dump"
MLFLOW_DUMP = "db/mlflow.dump"
ARTIFACTS_DIR = "mlartifacts"
DAGSTER_DIR = "dagster"
# What a restored home may already hold without counting as "not empty": nothing of ours.
TOP_LEVEL = (MANIFEST, "db", ARTIFACTS_DIR, DAGSTER_DIR)


class BackupError(RuntimeError):
    """E003: the archive, the destination or the target home is not usable. One readable line."""

    code = "E003"

    def __init__(self, message: str, code: str = "E003"):
        super().__init__(f"{code} {message}")
        self.code = code


# ---------------------------------------------------------------------------------------------- checksums
def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_stream(stream, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    while block := stream.read(chunk):
        h.update(block)
    return h.hexdigest()


def tree_files(root: Path, arc_prefix: str) -> list[tuple[str, Path]]:
    """(archive name, path) of every regular file under `root`, sorted; symlinks and sockets skipped."""
    if not root.is_dir():
        return []
    out = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            out.append((f"{arc_prefix}/{p.relative_to(root).as_posix()}", p))
    return out


def safe_member(name: str) -> bool:
    """A member name that stays inside the extraction folder and belongs to the layout."""
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        return False
    return p.parts[0] in TOP_LEVEL


# ---------------------------------------------------------------------------------------------- manifest
def build_manifest(
    files: Mapping[str, tuple[str, int]],
    *,
    created_at: dt.datetime,
    versions: Mapping[str, str],
    source: Mapping[str, Any],
    tables: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """The manifest: `files` maps archive name -> (sha256, size)."""
    for name in files:
        if not safe_member(name) or name == MANIFEST:
            raise ValueError(f"{name!r} is not a member of the backup layout")
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_at": created_at.astimezone(dt.UTC).isoformat(timespec="seconds"),
        "versions": dict(sorted(versions.items())),
        "source": dict(source),
        "tables": {k: dict(v) for k, v in sorted(tables.items())},
        "files": [{"path": name, "sha256": sha, "size": size} for name, (sha, size) in sorted(files.items())],
    }


def parse_manifest(text: str | bytes) -> dict[str, Any]:
    """The manifest of an archive, or BackupError when it is not one this version can restore."""
    try:
        manifest = json.loads(text)
    except ValueError as exc:
        raise BackupError(f"invalid input: the archive's {MANIFEST} is not JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"invalid input: {MANIFEST} is not a {FORMAT} manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError(
            f"invalid input: backup format version {manifest.get('format_version')!r}; "
            f"this titans restores version {FORMAT_VERSION}"
        )
    files = manifest.get("files")
    if not isinstance(files, list) or not all(
        isinstance(f, dict) and {"path", "sha256", "size"} <= f.keys() for f in files
    ):
        raise BackupError(f"invalid input: {MANIFEST} has no valid file list")
    for f in files:
        if not safe_member(str(f["path"])):
            raise BackupError(f"invalid input: {MANIFEST} lists {f['path']!r}, outside the backup layout")
    if WAREHOUSE_DUMP not in {f["path"] for f in files}:
        raise BackupError(f"invalid input: the archive holds no {WAREHOUSE_DUMP}")
    return manifest


def verify(manifest: Mapping[str, Any], found: Mapping[str, tuple[str, int]]) -> list[str]:
    """Every difference between the manifest's file list and what the archive holds (name -> (sha256,
    size)), one readable phrase each; empty when they agree exactly."""
    listed = {f["path"]: (f["sha256"], int(f["size"])) for f in manifest["files"]}
    problems = []
    for name in sorted(listed.keys() - found.keys()):
        problems.append(f"{name} is missing")
    for name in sorted(found.keys() - listed.keys()):
        problems.append(f"{name} is not in the manifest")
    for name in sorted(listed.keys() & found.keys()):
        sha, size = listed[name]
        if found[name][1] != size:
            problems.append(f"{name} has {found[name][1]} bytes, the manifest says {size}")
        elif found[name][0] != sha:
            problems.append(f"{name} has sha256 {found[name][0][:12]}..., the manifest says {sha[:12]}...")
    return problems


def verification_error(archive: Path, problems: list[str]) -> BackupError:
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return BackupError(
        f"invalid input: {archive} does not match its manifest: {problems[0]}{more}; nothing was restored"
    )


def compare_tables(
    expected: Mapping[str, Mapping[str, Any]], actual: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """Tables whose row count or ordered-row hash differs after a restore."""
    problems = []
    for table in sorted(expected):
        got = actual.get(table)
        if got is None:
            problems.append(f"{table} is missing")
        elif got.get("rows") != expected[table].get("rows"):
            problems.append(
                f"{table} has {got.get('rows')} rows, the backup had {expected[table].get('rows')}"
            )
        elif got.get("sha256") != expected[table].get("sha256"):
            problems.append(f"{table} rows differ from the backup's")
    return problems


# ---------------------------------------------------------------------------------------------- tables
# Every row as text, sorted by that text, hashed: equal for equal tables whatever their physical order.
TABLE_HASH_SQL = (
    "SELECT count(*), coalesce(encode(sha256(convert_to(string_agg(t::text, E'\\n' ORDER BY t::text),"
    " 'UTF8')), 'hex'), '') FROM {} t"
)


def table_hashes(db, schemas: Iterable[str] = ("raw", "marts")) -> dict[str, dict[str, Any]]:
    """`schema.table` -> {"rows", "sha256"} of every base table in `schemas` (the marts' checksums)."""
    from psycopg2 import sql

    out: dict[str, dict[str, Any]] = {}
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE table_schema = ANY(%s) AND table_type = 'BASE TABLE' ORDER BY 1, 2",
            (list(schemas),),
        )
        for schema, table in cur.fetchall():
            cur.execute(
                sql.SQL(TABLE_HASH_SQL).format(
                    sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))
                )
            )
            rows, digest = cur.fetchone()
            out[f"{schema}.{table}"] = {"rows": int(rows), "sha256": digest}
    return out


# ---------------------------------------------------------------------------------------------- binaries
def server_major(version_num: int) -> int:
    """`SHOW server_version_num` (e.g. 160004, 150020) -> the major version (16, 15)."""
    return int(version_num) // 10000


def pg_tool(
    tool: str,
    major: int,
    *,
    embedded: bool,
    embedded_bin: Path | None,
    system_root: Path = Path("/usr/lib/postgresql"),
    fallback: Path = Path("/usr/bin"),
) -> Path:
    """The pg_dump / pg_restore that matches the server: pgserver's own binaries for the embedded
    server, else the system's for that major version (Debian: /usr/lib/postgresql/<major>/bin), else
    the system's default client (a newer pg_dump reads an older server; an older one refuses)."""
    candidates = []
    if embedded and embedded_bin is not None:
        candidates.append(embedded_bin / tool)
    candidates.append(system_root / str(major) / "bin" / tool)
    candidates.append(fallback / tool)
    for c in candidates:
        if c.is_file():
            return c
    raise BackupError(
        f"no {tool} found for PostgreSQL {major} (looked in "
        f"{', '.join(str(c.parent) for c in candidates)}): install the PostgreSQL {major} client",
        code="E001",
    )


def libpq_env(parts: Mapping[str, str]) -> dict[str, str]:
    """The connection as libpq environment variables: no password on a command line."""
    env = {
        "PGHOST": parts["host"],
        "PGPORT": str(parts["port"]),
        "PGUSER": parts["user"],
        "PGDATABASE": parts["dbname"],
    }
    if parts.get("password"):
        env["PGPASSWORD"] = parts["password"]
    return env


# ---------------------------------------------------------------------------------------------- restore rules
def home_entries(home: Path) -> list[str]:
    """What a home already holds (its top-level names); a missing home holds nothing."""
    if not home.exists():
        return []
    if not home.is_dir():
        raise BackupError(f"invalid input: {home} (TITANS_HOME) is not a directory")
    return sorted(p.name for p in home.iterdir())


def refuse_non_empty(home: Path, force: bool) -> None:
    entries = home_entries(home)
    if entries and not force:
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise BackupError(
            f"invalid input: TITANS_HOME {home} is not empty ({shown}); restore into an empty "
            "home, or pass --force to replace what it holds"
        )


def artifact_rewrite(old_root: str | None, new_root: str) -> tuple[str, str] | None:
    """(old prefix, new prefix) to rewrite in the restored MLflow database so runs and model versions
    point at the restored artifacts; None when nothing moves (same root, or artifacts not local)."""
    if not old_root or not old_root.startswith("file://") or not new_root.startswith("file://"):
        return None
    old, new = old_root.rstrip("/"), new_root.rstrip("/")
    return None if old == new else (old, new)


def rewrite_sql(table: str, column: str) -> str:
    """UPDATE replacing the artifact root at the start of one text column (parameters: old, new, old)."""
    for name in (table, column):
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"unexpected identifier {name!r}")
    return (
        f'UPDATE "{table}" SET "{column}" = %s || substr("{column}", length(%s) + 1) WHERE "{column}" LIKE %s'
    )


def like_prefix(prefix: str) -> str:
    """A LIKE pattern matching text that starts with `prefix` (its wildcards escaped)."""
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%"


@dataclass(frozen=True)
class Summary:
    """What a backup holds, for the one-paragraph report the command prints."""

    files: int
    bytes: int
    tables: int
    rows: int

    @classmethod
    def of(cls, manifest: Mapping[str, Any]) -> Summary:
        return cls(
            files=len(manifest["files"]),
            bytes=sum(int(f["size"]) for f in manifest["files"]),
            tables=len(manifest.get("tables", {})),
            rows=sum(int(t.get("rows", 0)) for t in manifest.get("tables", {}).values()),
        )


def default_archive_name(now: dt.datetime) -> str:
    """`titans-backup-YYYYmmddTHHMMSSZ.tar.gz` (UTC), for a DEST that is a directory."""
    return f"titans-backup-{now.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}.tar.gz"


# ============================================================================================== I/O
# What `titans backup` / `titans restore` and the scheduled backup run (subprocesses, files, the database).
def _tool_for(db, tool: str) -> tuple[Path, str]:
    """The matching binary for `db`'s server and the server's version string."""
    with db.connect(autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SHOW server_version_num")
        num = int(cur.fetchone()[0])
        cur.execute("SHOW server_version")
        version = cur.fetchone()[0]
    embedded_bin = None
    if db.embedded:
        from pgserver._commands import POSTGRES_BIN_PATH

        embedded_bin = Path(POSTGRES_BIN_PATH)
    return pg_tool(tool, server_major(num), embedded=db.embedded, embedded_bin=embedded_bin), version


def _run_pg(argv: list[str], db, what: str) -> None:
    import os
    import subprocess

    env = {**os.environ, **libpq_env(db.connect_kwargs())}
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        lines = [ln.strip() for ln in (done.stderr or done.stdout).splitlines() if ln.strip()]
        raise BackupError(
            f"{what} failed ({Path(argv[0]).name} exit {done.returncode}): "
            f"{lines[0] if lines else 'no output'}",
            code="E001",
        )


def _mlflow_database(settings, db):
    """The MLflow store as a Database when it is a PostgreSQL database (the default `<db>_mlflow`, or a
    postgresql:// TITANS_MLFLOW_TRACKING_URI); None for an MLflow tracking server."""
    from titans_assets.lib.db import Database
    from titans_assets.lib.ml.tracking import Registry

    registry = Registry.from_settings(settings, db)
    uri = registry.tracking_uri
    if not uri.startswith(("postgresql", "postgres")):
        return None, registry
    if settings.mlflow_tracking_uri is None:
        return db.sibling(f"{db.dbname}_mlflow"), registry
    return Database(uri.replace("+psycopg2", "", 1)), registry


def _local_path(uri: str) -> Path | None:
    from urllib.parse import unquote, urlsplit

    if not uri.startswith("file://"):
        return None
    return Path(unquote(urlsplit(uri).path))


def _versions(extra: Mapping[str, str]) -> dict[str, str]:
    import platform
    from importlib import metadata

    out = {"python": platform.python_version(), **extra}
    for key, dist in (
        ("titans", "titans-finance"),
        ("mlflow", "mlflow"),
        ("dagster", "dagster"),
        ("dbt-core", "dbt-core"),
    ):
        try:
            out[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[key] = "unknown"
    return out


def _archive_path(dest: Path, now: dt.datetime) -> Path:
    """The archive's file: `dest`, or a dated name inside it when it is a directory; never an existing file."""
    dest = Path(dest).resolve()
    if dest.is_dir():
        dest = dest / default_archive_name(now)
    if dest.exists():
        raise BackupError(f"invalid input: {dest} exists already; name a new file or a directory")
    if not dest.parent.is_dir():
        raise BackupError(f"invalid input: {dest.parent} is not a directory")
    return dest


def _pg_dump(pg_dump: Path, db, file: Path, what: str) -> None:
    """A custom-format dump of `db` into `file`, without owners or privileges (restorable anywhere)."""
    _run_pg([str(pg_dump), "--format=custom", "--no-owner", "--no-privileges", "--file", str(file)], db, what)


def _write_tar(dest: Path, manifest_file: Path, members: list[tuple[str, Path]]) -> None:
    """The gzipped tar of the manifest and `members`, written beside `dest` and renamed into place."""
    import os
    import tarfile

    partial = dest.with_name(dest.name + ".partial")
    with tarfile.open(partial, "w:gz", compresslevel=6) as tar:
        tar.add(manifest_file, arcname=MANIFEST)
        for name, path in members:
            tar.add(path, arcname=name, recursive=False)
    os.replace(partial, dest)


def write_backup(settings, db, dest: Path, now: dt.datetime | None = None) -> tuple[Path, dict[str, Any]]:
    """Dump everything into one archive at `dest` (a file, or a directory to put a dated file in).
    Written beside the destination first and renamed, so a failed backup leaves no half archive."""
    import subprocess
    import tempfile

    now = now or dt.datetime.now(dt.UTC)
    dest = _archive_path(dest, now)
    mlflow_db, registry = _mlflow_database(settings, db)
    pg_dump, server_version = _tool_for(db, "pg_dump")
    with tempfile.TemporaryDirectory(prefix=".titans-backup-", dir=dest.parent) as tmp:
        work = Path(tmp)
        (work / "db").mkdir()
        _pg_dump(pg_dump, db, work / WAREHOUSE_DUMP, "pg_dump of the warehouse")
        members: list[tuple[str, Path]] = [(WAREHOUSE_DUMP, work / WAREHOUSE_DUMP)]
        if mlflow_db is not None:
            mlflow_dump, _ = _tool_for(mlflow_db, "pg_dump")
            _pg_dump(mlflow_dump, mlflow_db, work / MLFLOW_DUMP, "pg_dump of the MLflow database")
            members.append((MLFLOW_DUMP, work / MLFLOW_DUMP))
        artifacts = _local_path(registry.artifact_root)
        if artifacts is not None:
            members += tree_files(artifacts, ARTIFACTS_DIR)
        members += tree_files(settings.dagster_home, DAGSTER_DIR)
        files = {name: (sha256_file(path), path.stat().st_size) for name, path in members}
        dump_version = subprocess.run(
            [str(pg_dump), "--version"], capture_output=True, text=True
        ).stdout.strip()
        manifest = build_manifest(
            files,
            created_at=now,
            versions=_versions({"postgres": server_version, "pg_dump": dump_version}),
            source={
                "database": db.redacted(),
                "embedded": db.embedded,
                "dbname": db.dbname,
                "home": str(settings.home),
                "artifact_root": registry.artifact_root,
                "artifacts_included": artifacts is not None,
                "mlflow_store": "postgresql" if mlflow_db is not None else registry.tracking_uri,
                "dagster_storage": "in the warehouse database (dagster.yaml: postgres storage)",
            },
            tables=table_hashes(db),
        )
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        _write_tar(dest, work / MANIFEST, members)
    return dest, manifest


def read_archive(archive: Path) -> dict[str, Any]:
    """The archive's manifest, once every member has been checked against it (BackupError otherwise)."""
    import tarfile

    archive = Path(archive)
    if not archive.is_file():
        raise BackupError(f"invalid input: {archive} is not a file")
    try:
        with tarfile.open(archive, "r:*") as tar:
            manifest = None
            found: dict[str, tuple[str, int]] = {}
            odd: list[str] = []
            for member in tar:
                if member.name == MANIFEST:
                    manifest = parse_manifest(tar.extractfile(member).read())
                elif not member.isfile() or not safe_member(member.name):
                    odd.append(f"{member.name} is not a regular file of the backup layout")
                else:
                    found[member.name] = (sha256_stream(tar.extractfile(member)), member.size)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BackupError(f"invalid input: {archive} is not a readable backup archive ({exc})") from None
    if manifest is None:
        raise BackupError(f"invalid input: {archive} holds no {MANIFEST}: not a titans backup")
    problems = odd + verify(manifest, found)
    if problems:
        raise verification_error(archive, problems)
    return manifest


def _database_tables(db) -> list[str]:
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables"
            " WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1 LIMIT 6"
        )
        return [r[0] for r in cur.fetchall()]


def _restore_dump(db, dump: Path, force: bool, what: str) -> None:
    pg_restore, _ = _tool_for(db, "pg_restore")
    clean = ["--clean", "--if-exists"] if force else []
    _run_pg(
        [
            str(pg_restore),
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            *clean,
            "--dbname",
            db.dbname,
            str(dump),
        ],
        db,
        what,
    )


def _rewrite_artifact_root(mlflow_db, old: str, new: str) -> int:
    """Point the restored MLflow database's runs, experiments and model versions at the new artifact
    root: every text column of its tables that starts with the old root. Returns the rows changed."""
    changed = 0
    with mlflow_db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT table_name, column_name FROM information_schema.columns c"
            " JOIN information_schema.tables t USING (table_schema, table_name)"
            " WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'"
            " AND c.data_type IN ('text', 'character varying') ORDER BY 1, 2"
        )
        for table, column in cur.fetchall():
            cur.execute(rewrite_sql(table, column), (new, old, like_prefix(old)))
            changed += cur.rowcount
    return changed


def restore_backup(settings, archive: Path, force: bool = False) -> dict[str, Any]:
    """Rebuild `settings.home` (and its database) from an archive: checksums first, then the target
    must be empty (unless `force`), then the databases, the artifacts and Dagster's home, and last the
    tables' hashes are compared with the manifest's. Returns the manifest."""
    import shutil
    import tarfile
    import tempfile

    from titans_assets.lib.db import get_database

    archive = Path(archive).resolve()
    manifest = read_archive(archive)
    refuse_non_empty(settings.home, force)
    settings.home.mkdir(parents=True, exist_ok=True)
    db = get_database(settings)
    db.ping()
    mlflow_db, registry = _mlflow_database(settings, db)
    if not force:
        for target in (db, mlflow_db):
            present = _database_tables(target) if target is not None else []
            if present:
                raise BackupError(
                    f"invalid input: database {target.redacted()} is not empty "
                    f"({', '.join(present[:5])}); restore into an empty database, or pass "
                    "--force to replace its tables"
                )
    names = {f["path"] for f in manifest["files"]}
    if MLFLOW_DUMP in names and mlflow_db is None:
        raise BackupError(
            f"invalid input: the backup holds an MLflow database but the MLflow store "
            f"{registry.tracking_uri} is not PostgreSQL; unset TITANS_MLFLOW_TRACKING_URI"
        )
    with tempfile.TemporaryDirectory(prefix=".restore-", dir=settings.home) as tmp:
        work = Path(tmp)
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(work, filter="data")
        # The archive may have changed between the check and the extraction: check what was extracted.
        problems = verify(
            manifest,
            {n: (sha256_file(work / n), (work / n).stat().st_size) for n in names if (work / n).is_file()},
        )
        if problems:
            raise verification_error(archive, problems)
        _restore_dump(db, work / WAREHOUSE_DUMP, force, "pg_restore of the warehouse")
        if MLFLOW_DUMP in names:
            _restore_dump(mlflow_db, work / MLFLOW_DUMP, force, "pg_restore of the MLflow database")
        artifacts = _local_path(registry.artifact_root)
        if (work / ARTIFACTS_DIR).is_dir():
            if artifacts is None:
                raise BackupError(
                    f"invalid input: the backup holds MLflow artifacts but the artifact root "
                    f"{registry.artifact_root} is not a local folder; unset TITANS_MLFLOW_ARTIFACTS"
                )
            if artifacts.exists():
                shutil.rmtree(artifacts)
            artifacts.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(work / ARTIFACTS_DIR, artifacts)
        move = artifact_rewrite(manifest["source"].get("artifact_root"), registry.artifact_root)
        if move and mlflow_db is not None and MLFLOW_DUMP in names:
            _rewrite_artifact_root(mlflow_db, *move)
        if (work / DAGSTER_DIR).is_dir():
            if settings.dagster_home.exists():
                shutil.rmtree(settings.dagster_home)
            shutil.move(work / DAGSTER_DIR, settings.dagster_home)
    problems = compare_tables(manifest.get("tables", {}), table_hashes(db))
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise BackupError(f"the restored tables differ from the backup: {problems[0]}{more}", code="E000")
    return manifest


def stale_backups(names: Iterable[str], keep: int) -> list[str]:
    """The dated archives (`titans-backup-<UTC stamp>.tar.gz`) beyond the newest `keep`, oldest first;
    other files are never listed. keep <= 0 keeps everything."""
    dated = sorted(n for n in names if re.fullmatch(r"titans-backup-\d{8}T\d{6}Z\.tar\.gz", n))
    return [] if keep <= 0 else dated[:-keep] if len(dated) > keep else []
