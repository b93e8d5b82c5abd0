"""Backups that restore: the manifest and checksum rules (unit), a damaged or misplaced restore refused
in one coded line before anything changes, and the round trip for real: a small pipeline run (the
four models trained and promoted) -> `titans backup` -> the home deleted -> `titans restore` into an
empty home -> the same mart checksums, the same champions answering the same way, `titans status`
equal apart from paths. Embedded server always; the external one when TITANS_TEST_EXTERNAL_URL is set,
on the data assets only (what differs there is the server: the system's pg_dump/pg_restore over TCP
and two databases dropped and recreated; the models' artifacts and registry round trip the same way
on both servers, so they are trained once, in the embedded round trip)."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import ROOT, TEST_TODAY, cli_env, run_titans, scratch_database
from support import new_home

from titans_assets.lib import backup as B
from titans_assets.lib.db import Database

NOW = dt.datetime(2026, 6, 30, 12, 0, tzinfo=dt.UTC)


# ---------------------------------------------------------------------------------------------- unit
def _manifest(files: dict[str, bytes], tables=None) -> dict:
    return B.build_manifest(
        {n: (B.sha256_stream(io.BytesIO(b)), len(b)) for n, b in files.items()},
        created_at=NOW,
        versions={"titans": "0.1.0", "postgres": "16.4"},
        source={"home": "/old", "artifact_root": "file:///old/mlartifacts"},
        tables=tables or {"marts.t": {"rows": 1, "sha256": "ab"}},
    )


def _archive(path: Path, manifest: dict | bytes | None, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        members = dict(files)
        if manifest is not None:
            members = {
                B.MANIFEST: manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode(),
                **members,
            }
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


FILES = {
    B.WAREHOUSE_DUMP: b"PGDMP warehouse",
    B.MLFLOW_DUMP: b"PGDMP mlflow",
    "mlartifacts/titans/r1/artifacts/model/MLmodel": b"flavors: {}\n",
    "dagster/dagster.yaml": b"storage: {}\n",
}


def test_manifest_lists_every_member_with_its_checksum_and_size_and_the_versions():
    m = _manifest(FILES)
    assert m["format"] == B.FORMAT and m["format_version"] == B.FORMAT_VERSION
    assert m["created_at"] == "2026-06-30T12:00:00+00:00"
    assert [f["path"] for f in m["files"]] == sorted(FILES)
    by_path = {f["path"]: f for f in m["files"]}
    assert by_path[B.WAREHOUSE_DUMP]["size"] == len(FILES[B.WAREHOUSE_DUMP])
    assert by_path[B.WAREHOUSE_DUMP]["sha256"] == hashlib.sha256(FILES[B.WAREHOUSE_DUMP]).hexdigest()
    assert m["versions"] == {"postgres": "16.4", "titans": "0.1.0"} and m["tables"]["marts.t"]["rows"] == 1
    assert B.parse_manifest(json.dumps(m)) == m
    with pytest.raises(ValueError):
        _manifest({"../etc/passwd": b"x"})
    with pytest.raises(ValueError):
        _manifest({"notes.txt": b"x"})  # not in the layout


def test_verify_names_every_difference():
    m = _manifest(FILES)
    found = {n: (B.sha256_stream(io.BytesIO(b)), len(b)) for n, b in FILES.items()}
    assert B.verify(m, found) == []
    tampered = dict(found)
    tampered[B.MLFLOW_DUMP] = (B.sha256_stream(io.BytesIO(b"PGDMP mlflox")), len(b"PGDMP mlflox"))
    del tampered["dagster/dagster.yaml"]
    tampered["dagster/extra"] = ("00" * 32, 1)
    tampered[B.WAREHOUSE_DUMP] = (found[B.WAREHOUSE_DUMP][0], 3)
    problems = B.verify(m, tampered)
    assert problems == [
        "dagster/dagster.yaml is missing",
        "dagster/extra is not in the manifest",
        f"{B.MLFLOW_DUMP} has sha256 {tampered[B.MLFLOW_DUMP][0][:12]}..., the manifest says "
        f"{found[B.MLFLOW_DUMP][0][:12]}...",
        f"{B.WAREHOUSE_DUMP} has 3 bytes, the manifest says {len(FILES[B.WAREHOUSE_DUMP])}",
    ]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (b"not json", "is not JSON"),
        (json.dumps({"format": "other"}).encode(), "is not a titans-backup manifest"),
        (json.dumps({"format": B.FORMAT, "format_version": 99, "files": []}).encode(), "format version 99"),
        (
            json.dumps({"format": B.FORMAT, "format_version": 1, "files": [{"path": "x"}]}).encode(),
            "no valid file list",
        ),
        (
            json.dumps(
                {
                    "format": B.FORMAT,
                    "format_version": 1,
                    "files": [{"path": "/etc/passwd", "sha256": "0", "size": 1}],
                }
            ).encode(),
            "outside the backup layout",
        ),
        (
            json.dumps({"format": B.FORMAT, "format_version": 1, "files": []}).encode(),
            "holds no db/warehouse.dump",
        ),
    ],
)
def test_a_manifest_that_cannot_be_restored_is_refused_with_e003(text, says):
    with pytest.raises(B.BackupError) as exc:
        B.parse_manifest(text)
    assert str(exc.value).startswith("E003 invalid input") and says in str(exc.value)


def test_table_comparison_reports_rows_then_content():
    expected = {
        "marts.a": {"rows": 2, "sha256": "x"},
        "marts.b": {"rows": 1, "sha256": "y"},
        "raw.c": {"rows": 0, "sha256": ""},
    }
    assert B.compare_tables(expected, dict(expected)) == []
    assert B.compare_tables(
        expected, {"marts.a": {"rows": 3, "sha256": "x"}, "marts.b": {"rows": 1, "sha256": "z"}}
    ) == ["marts.a has 3 rows, the backup had 2", "marts.b rows differ from the backup's", "raw.c is missing"]


def test_pg_tool_prefers_the_servers_own_binaries(tmp_path: Path):
    embedded, system, fallback = tmp_path / "pgserver", tmp_path / "lib", tmp_path / "bin"
    for d in (embedded, system / "15" / "bin", fallback):
        d.mkdir(parents=True)
        (d / "pg_dump").write_text("")
    assert (
        B.pg_tool("pg_dump", 16, embedded=True, embedded_bin=embedded, system_root=system, fallback=fallback)
        == embedded / "pg_dump"
    )
    assert (
        B.pg_tool("pg_dump", 15, embedded=False, embedded_bin=embedded, system_root=system, fallback=fallback)
        == system / "15" / "bin" / "pg_dump"
    )
    assert (
        B.pg_tool("pg_dump", 17, embedded=False, embedded_bin=None, system_root=system, fallback=fallback)
        == fallback / "pg_dump"
    )
    with pytest.raises(B.BackupError, match="E001 no pg_restore found for PostgreSQL 17"):
        B.pg_tool("pg_restore", 17, embedded=False, embedded_bin=None, system_root=system, fallback=fallback)
    assert B.server_major(160004) == 16 and B.server_major(150020) == 15


def test_restore_rules_home_artifacts_and_names(tmp_path: Path):
    B.refuse_non_empty(tmp_path / "absent", force=False)
    (tmp_path / "home").mkdir()
    B.refuse_non_empty(tmp_path / "home", force=False)
    (tmp_path / "home" / "pgdata").mkdir()
    with pytest.raises(B.BackupError, match=r"E003 invalid input: TITANS_HOME .* is not empty \(pgdata\)"):
        B.refuse_non_empty(tmp_path / "home", force=False)
    B.refuse_non_empty(tmp_path / "home", force=True)

    assert B.artifact_rewrite("file:///a/mlartifacts/", "file:///b/mlartifacts") == (
        "file:///a/mlartifacts",
        "file:///b/mlartifacts",
    )
    assert B.artifact_rewrite("file:///a/mlartifacts", "file:///a/mlartifacts/") is None
    assert B.artifact_rewrite("s3://bucket/x", "file:///b") is None
    assert B.like_prefix("file:///tmp/a_b%c") == "file:///tmp/a\\_b\\%c/%"
    assert B.rewrite_sql("runs", "artifact_uri").startswith('UPDATE "runs" SET "artifact_uri" = %s')
    with pytest.raises(ValueError):
        B.rewrite_sql('runs"; DROP TABLE x; --', "c")
    assert (
        not B.safe_member("db/../../x") and not B.safe_member("/db/x") and B.safe_member("db/warehouse.dump")
    )
    assert B.default_archive_name(NOW) == "titans-backup-20260630T120000Z.tar.gz"
    assert B.libpq_env({"host": "h", "port": "5", "user": "u", "password": "", "dbname": "d"}) == {
        "PGHOST": "h",
        "PGPORT": "5",
        "PGUSER": "u",
        "PGDATABASE": "d",
    }


def test_read_archive_checks_every_member_before_anything(tmp_path: Path):
    good = _archive(tmp_path / "good.tar.gz", _manifest(FILES), FILES)
    assert B.read_archive(good)["files"] == _manifest(FILES)["files"]

    bad = _archive(tmp_path / "bad.tar.gz", _manifest(FILES), {**FILES, B.MLFLOW_DUMP: b"PGDMP mlflox"})
    with pytest.raises(
        B.BackupError,
        match=r"^E003 invalid input: .*bad.tar.gz does not match its manifest: "
        r"db/mlflow.dump has sha256 .*nothing was restored$",
    ):
        B.read_archive(bad)
    with pytest.raises(B.BackupError, match="holds no manifest.json"):
        B.read_archive(_archive(tmp_path / "none.tar.gz", None, FILES))
    with pytest.raises(B.BackupError, match="not a regular file of the backup layout"):
        B.read_archive(_archive(tmp_path / "odd.tar.gz", _manifest(FILES), {**FILES, "etc/x": b"1"}))
    (tmp_path / "junk.tar.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(B.BackupError, match="is not a readable backup archive"):
        B.read_archive(tmp_path / "junk.tar.gz")
    with pytest.raises(B.BackupError, match="is not a file"):
        B.read_archive(tmp_path / "missing.tar.gz")


# ---------------------------------------------------------------------------------------------- the CLI
_env = cli_env
_titans = functools.partial(run_titans, timeout=900)  # a pipeline run and a restore


def test_a_damaged_archive_is_one_coded_line_and_the_home_stays_empty(tmp_path: Path):
    home = new_home()
    try:
        archive = _archive(
            tmp_path / "b.tar.gz", _manifest(FILES), {**FILES, B.WAREHOUSE_DUMP: b"PGDMP changed!!"}
        )
        done = _titans("restore", str(archive), env=_env(home, tmp_path / "raw"), timeout=120)
        assert done.returncode == 1
        lines = done.stderr.strip().splitlines()
        assert (
            len(lines) == 1 and lines[0].startswith("error: E003 invalid input: ") and "-> next:" in lines[0]
        )
        assert "db/warehouse.dump has sha256" in lines[0] and "Traceback" not in done.stderr
        assert list(home.iterdir()) == []  # nothing was started or written
    finally:
        shutil.rmtree(home, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- round trip
PROBE = """
import json, sys
from titans_assets.lib.backup import table_hashes
from titans_assets.lib.db import get_database
from titans_assets.lib.ml.catalog import SPECS
from titans_assets.lib.ml.tracking import Registry
from titans_assets.lib.settings import Settings

settings = Settings.from_env()
db = get_database(settings)
registry = Registry.from_settings(settings, db)
champions = {}
for spec in SPECS:
    champ = registry.champion(spec.name)  # the pyfunc model loaded from its artifacts, as the service does
    if champ is None:  # the data assets only (the external round trip)
        champions[spec.name] = None
        continue
    out = champ.model.predict(spec.example_frame())
    champions[spec.name] = {"version": champ.version, "run_id": champ.run_id, "kind": champ.kind,
                            "answer": out.to_json(orient="split", date_format="iso", double_precision=10)}
json.dump({"tables": table_hashes(db, ("raw", "marts", "features")), "champions": champions}, sys.stdout)
"""


def _probe(env: dict[str, str]) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def _status(env: dict[str, str]) -> dict:
    done = _titans("status", "--json", env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    for key in ("database", "home", "generated_at"):  # paths and the clock: the only differences allowed
        report.pop(key)
    return report


@pytest.mark.integration
@pytest.mark.parametrize("server", ["embedded", pytest.param("external", marks=pytest.mark.external)])
def test_backup_then_restore_into_an_empty_home_gives_the_same_platform(server, tmp_path: Path, request):
    from titans_assets.lib.generator import generate

    external = None
    if server == "external":
        import os

        url = os.environ.get("TITANS_TEST_EXTERNAL_URL")
        if not url:
            pytest.skip("TITANS_TEST_EXTERNAL_URL is not set")
        external = Database(url)
    models = external is None  # the external round trip runs the data assets only (module docstring)
    data = tmp_path / "data"
    # small (the round trip, not the models, is under test): a year of ~400 rows trains all four
    generate(data / "raw", rows=400, years=1.0, seed=7, end_date=TEST_TODAY, labels_dir=data / "labels")
    source_home, restored_home = new_home(), new_home()
    dest = tmp_path / "backups"
    dest.mkdir()
    with (
        scratch_database(external) if external else _no_database() as source_db,
        scratch_database(external) if external else _no_database() as target_db,
    ):
        try:
            env1 = _env(source_home, data / "raw", source_db.url if source_db else None)
            env2 = _env(restored_home, data / "raw", target_db.url if target_db else None)
            run = _titans("materialize", *(() if models else ("--select", "not group:ml")), env=env1)
            assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
            before, status_before = _probe(env1), _status(env1)
            # a model or its baseline serves (none where the models were not trained)
            assert all(bool(m["champion"]) is models for m in status_before["models"].values())
            assert before["tables"]["marts.fct_transactions"]["rows"] > 300

            done = _titans("backup", str(dest), env=env1)
            assert done.returncode == 0, done.stderr
            [archive] = dest.glob("titans-backup-*.tar.gz")
            with tarfile.open(archive) as tar:
                manifest = json.load(tar.extractfile(B.MANIFEST))
                names = set(tar.getnames())
            assert {B.MANIFEST, B.WAREHOUSE_DUMP, B.MLFLOW_DUMP, "dagster/dagster.yaml"} <= names
            assert any(n.startswith("mlartifacts/") and n.endswith("/MLmodel") for n in names) is models
            assert {"titans", "postgres", "pg_dump", "mlflow", "dagster"} <= set(manifest["versions"])
            assert manifest["source"]["embedded"] is (external is None)
            assert {t: v for t, v in before["tables"].items() if not t.startswith("features.")} == manifest[
                "tables"
            ]

            # The disk is lost: the old home (its embedded server, artifacts, Dagster home) is gone.
            shutil.rmtree(source_home)
            if source_db is not None:
                with external.connect(autocommit=True) as conn, conn.cursor() as cur:
                    cur.execute(f'DROP DATABASE "{source_db.dbname}" WITH (FORCE)')
                    cur.execute(f'DROP DATABASE "{source_db.dbname}_mlflow" WITH (FORCE)')

            done = _titans("restore", str(archive), env=env2)
            assert done.returncode == 0, done.stderr
            assert "identical to the backup's" in done.stdout
            after = _probe(env2)
            assert after["tables"] == before["tables"]  # every raw, mart and feature table, row by row
            assert after["champions"] == before["champions"]  # same versions, runs, and answers
            assert all(before["champions"].values()) is models
            assert _status(env2) == status_before

            again = _titans("restore", str(archive), env=env2)
            assert again.returncode == 1
            assert again.stderr.startswith("error: E003 invalid input: ") and "--force" in again.stderr
            assert len(again.stderr.strip().splitlines()) == 1
        finally:
            shutil.rmtree(source_home, ignore_errors=True)
            shutil.rmtree(restored_home, ignore_errors=True)


class _no_database:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


# ---------------------------------------------------------------------------------------------- the schedule
def test_the_scheduled_backup_is_off_by_default_and_skips_without_a_destination(monkeypatch, tmp_path: Path):
    import dagster as dg

    from titans_assets.definitions import defs
    from titans_assets.defs.automation.backup import backup_settings, scheduled_backup

    assert defs.get_schedule_def("scheduled_backup").default_status == dg.DefaultScheduleStatus.STOPPED
    assert defs.get_job_def("backup") is not None
    monkeypatch.delenv("TITANS_BACKUP_DIR", raising=False)
    with dg.build_schedule_context(scheduled_execution_time=dt.datetime(2026, 6, 30, 3, 30)) as context:
        result = scheduled_backup(context)
    assert isinstance(result, dg.SkipReason) and "TITANS_BACKUP_DIR is not set" in result.skip_message
    monkeypatch.setenv("TITANS_BACKUP_DIR", str(tmp_path))
    with dg.build_schedule_context(scheduled_execution_time=dt.datetime(2026, 6, 30, 3, 30)) as context:
        result = scheduled_backup(context)
    assert isinstance(result, dg.RunRequest)
    assert backup_settings({"TITANS_BACKUP_DIR": "/b", "TITANS_BACKUP_KEEP": "3"}) == (Path("/b"), 3)
    assert backup_settings({}) == (None, 7)
    with pytest.raises(ValueError, match="E003 invalid input: TITANS_BACKUP_KEEP='x'"):
        backup_settings({"TITANS_BACKUP_KEEP": "x"})


def test_old_dated_backups_beyond_keep_are_listed_oldest_first():
    names = [
        "titans-backup-20260101T000000Z.tar.gz",
        "notes.txt",
        "titans-backup-20260103T000000Z.tar.gz",
        "titans-backup-20260102T000000Z.tar.gz",
        "titans-backup-x.tar.gz",
    ]
    assert B.stale_backups(names, 1) == [
        "titans-backup-20260101T000000Z.tar.gz",
        "titans-backup-20260102T000000Z.tar.gz",
    ]
    assert B.stale_backups(names, 3) == [] and B.stale_backups(names, 0) == []


@pytest.mark.integration
def test_the_backup_job_writes_a_restorable_archive_and_keeps_the_newest(
    monkeypatch, tmp_path: Path, embedded_db, embedded_home
):
    """The job the schedule runs, for real on a scratch database of the embedded server."""
    from titans_assets.defs.automation.backup import backup_job
    from titans_assets.resources import WarehouseResource

    with scratch_database(embedded_db) as db:
        with db.connect() as conn, conn.cursor() as cur:
            cur.execute(
                "CREATE SCHEMA marts; CREATE TABLE marts.t (a int, b text);"
                "INSERT INTO marts.t VALUES (2, 'x'), (1, 'y')"
            )
        monkeypatch.setenv("TITANS_HOME", str(embedded_home))
        monkeypatch.setenv("TITANS_DATABASE_URL", db.url)
        monkeypatch.setenv("TITANS_BACKUP_DIR", str(tmp_path / "b"))
        monkeypatch.setenv("TITANS_BACKUP_KEEP", "1")
        monkeypatch.delenv("TITANS_MLFLOW_TRACKING_URI", raising=False)
        monkeypatch.delenv("TITANS_MLFLOW_ARTIFACTS", raising=False)
        (tmp_path / "b").mkdir()
        old = tmp_path / "b" / "titans-backup-20200101T000000Z.tar.gz"
        old.write_bytes(b"an old one")
        result = backup_job.execute_in_process(resources={"warehouse": WarehouseResource()})
        assert result.success
        path = Path(result.output_for_node("write_backup_archive"))
        assert path.parent == tmp_path / "b" and not old.exists()  # keep 1: the old one went
        manifest = B.read_archive(path)
        assert manifest["tables"]["marts.t"]["rows"] == 2 and manifest["source"]["embedded"] is True
        assert {B.WAREHOUSE_DUMP, B.MLFLOW_DUMP} <= {f["path"] for f in manifest["files"]}
