"""Every way `titans` can fail ends in one coded line with the next step; what a failed run leaves in
`titans status`; the embedded server's lifecycle when its postmaster dies; and the fault drill:
PostgreSQL SIGKILLed during dbt, then a rerun whose marts equal a clean run's.

The unit tests hold lib/errors.py (the one mapping failure -> code, message, next step); the
integration tests run the real CLI as a user does (separate processes, the embedded PostgreSQL,
Dagster's storage in it) on a small generated ledger with an explicit end date and the frozen clock.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import TEST_TODAY, child_env
from support import free_port, new_home

from titans_assets.lib import errors
from titans_assets.lib.db import DatabaseError
from titans_assets.lib.ml.tracking import RegistryError
from titans_assets.lib.settings import SettingsError

ROOT = Path(__file__).resolve().parents[1]
TITANS = [sys.executable, "-m", "titans_assets.cli"]
CODE_LINE = r"^error: E00[0-5] .+ -> next: .+$"


# ---------------------------------------------------------------------------------------------- the mapping
def _raised(exc: BaseException, cause: BaseException | None = None) -> BaseException:
    """`exc` as Python leaves it after `raise exc from cause` (with its chain)."""
    try:
        try:
            if cause is not None:
                raise cause
            raise exc
        except BaseException as inner:
            if inner is exc:
                raise
            raise exc from inner
    except BaseException as caught:  # noqa: BLE001
        return caught


class DagsterPostgresException(Exception):
    """Same name as dagster_postgres' (the mapping reads type names: lib/ never imports Dagster)."""


class OperationalError(Exception):
    pass


class MlflowException(Exception):
    pass


@pytest.mark.parametrize(
    "exc, code, says",
    [
        (
            DatabaseError("E001 cannot connect to postgresql://u@h:5432/db (external): refused"),
            "E001",
            "cannot connect",
        ),
        (
            _raised(
                DagsterPostgresException("too many retries for DB connection"),
                OperationalError("server closed the connection unexpectedly"),
            ),
            "E001",
            "database connection failed",
        ),
        (
            RuntimeError("FATAL:  terminating connection due to unexpected postmaster exit"),
            "E001",
            "postmaster",
        ),
        (RegistryError("E002 MLflow registry unreachable: refused"), "E002", "MLflow registry unreachable"),
        (MlflowException("RESOURCE_DOES_NOT_EXIST"), "E002", "model registry"),
        (
            SettingsError("E003 invalid input: TITANS_AS_OF='soon' is not a date (YYYY-MM-DD)"),
            "E003",
            "TITANS_AS_OF",
        ),
        (
            ValueError("E003 no CSV files in /x: drop exports there or run `titans generate`"),
            "E003",
            "no CSV files",
        ),
        (ValueError("E003 selection 'key:no/such' matches no asset"), "E003", "matches no asset"),
        (FileNotFoundError(2, "No such file or directory", "/nowhere/x.csv"), "E003", "/nowhere/x.csv"),
        (ZeroDivisionError("division by zero"), "E000", "ZeroDivisionError: division by zero"),
    ],
)
def test_every_exception_maps_to_one_coded_line_with_a_next_step(exc, code, says):
    failure = errors.from_exception(exc)
    assert failure.code == code and says in failure.message
    line = failure.line()
    assert "\n" not in line and line.startswith(code + " ") and " -> next: " in line
    assert failure.next_step == line.split(" -> next: ", 1)[1] and failure.next_step


def test_a_coded_exception_deep_in_a_chain_keeps_its_code():
    """A DatabaseError raised inside a step, wrapped by Dagster's step error."""
    wrapped = _raised(
        RuntimeError("Error occurred while executing op"), DatabaseError("E001 cannot connect to x")
    )
    assert errors.from_exception(wrapped).code == "E001"


SIGN_METADATA = {
    "suite": "raw_transactions",
    "failed_blocking": ["amount_sign_matches_type"],
    "failed.amount_sign_matches_type": "2 unexpected rows",
    "failed.amount_sign_matches_type.blocking": True,
    "failed.amount_sign_matches_type.unexpected_count": 2,
    "failed.amount_sign_matches_type.sample": [
        {"source_file": "bank.csv", "line_number": 7, "txn_type": "Expense", "amount": 12.5},
        {"source_file": "bank.csv", "line_number": 9, "txn_type": "Income", "amount": -3.0},
    ],
    "failed.freshness": "stale",
    "failed.freshness.blocking": False,
}


def test_a_failed_check_names_its_rule_file_and_line_with_e003():
    failure = errors.check_failure("raw/transactions:gx_raw_transactions", SIGN_METADATA)
    assert failure.code == "E003"
    for part in ("gx_raw_transactions", "amount_sign_matches_type", "bank.csv line 7", "1 more row"):
        assert part in failure.message, failure.message
    assert "freshness" not in failure.message  # a warning is not why the run stopped
    assert "titans materialize" in failure.next_step
    # a dbt test knows only its name
    dbt = errors.check_failure("marts/fct_transactions:not_null_fct_transactions_amount", {})
    assert dbt.code == "E003" and "not_null_fct_transactions_amount failed" in dbt.message


def test_a_run_failure_prefers_the_database_then_the_check_then_the_step():
    check_step = ("DagsterAssetCheckFailedError", "1 blocking asset check failed: gx_raw_transactions")
    db_step = ("DagsterPostgresException", "too many retries for DB connection")
    bug_step = ("KeyError", "'amount'")
    checks = {"raw/transactions:gx_raw_transactions": SIGN_METADATA}
    assert (
        errors.run_failure(checks, [check_step]).message
        == errors.check_failure("raw/transactions:gx_raw_transactions", SIGN_METADATA).message
    )
    assert errors.run_failure(checks, [check_step, db_step]).code == "E001"
    assert errors.run_failure({}, [bug_step]).code == "E000"
    assert errors.run_failure({}, []).code == "E000"


def test_a_coded_cause_of_a_step_failure_keeps_its_code():
    """Dagster wraps an error raised in a step; the runner hands over the causes' lines too."""
    text = (
        'Error occurred while executing op "ml__category_challenger":\n'
        "RegistryError: E002 MLflow registry unreachable: connection refused"
    )
    failure = errors.run_failure({}, [("DagsterExecutionStepExecutionError", text)])
    assert failure.code == "E002" and failure.message.startswith("MLflow registry unreachable")


def test_a_failed_server_of_titans_up_keeps_the_code_its_log_shows():
    lost = errors.server_failure(
        "service exited with code 1: error: E001 cannot connect to x -> next: y "
        "(log: /h/logs/up/service.log)",
        "/h/logs/up",
    )
    assert (
        lost.code == "E001"
        and "service exited with code 1" in lost.message
        and "/h/logs/up" in lost.next_step
    )
    other = errors.server_failure("not answering after 300s: docs (logs: /h/logs/up)", "/h/logs/up")
    assert other.code == "E000" and "docs" in other.message


def test_usage_errors_name_the_option_and_the_help():
    failure = errors.usage_failure(
        "Invalid value for '--rows': -5 is not in the range x>=1.", "titans generate"
    )
    assert (
        failure.code == "E003"
        and "--rows" in failure.message
        and "titans generate --help" in failure.next_step
    )


# ---------------------------------------------------------------------------------------------- CLI paths
def _env(home: Path, landing: Path, **extra: str) -> dict[str, str]:
    env = child_env("TITANS_", "DAGSTER_", "DBT_")
    env |= {"TITANS_HOME": str(home), "TITANS_LANDING_DIR": str(landing), **extra}
    return env


def _titans(*args: str, env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    """A `titans` command; the timeout only guards against a hang (a loaded CI machine has taken over 300 s
    for one materialize running beside another)."""
    return subprocess.run(
        [*TITANS, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def _one_coded_line(done: subprocess.CompletedProcess, code: str) -> str:
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, done.stderr[-3000:]
    assert lines[0].startswith(f"error: {code} ") and " -> next: " in lines[0], lines[0]
    assert "Traceback" not in done.stdout + done.stderr
    return lines[0]


def test_cli_paths_that_need_no_run_each_end_in_one_coded_line(home: Path):
    nowhere = f"postgresql://titans:secret@127.0.0.1:{free_port()}/nowhere"
    line = _one_coded_line(
        _titans("status", env=_env(home, home / "raw", TITANS_DATABASE_URL=nowhere)), "E001"
    )
    assert "secret" not in line
    # bad arguments: exit 2, one line naming the option and the help to read
    done = _titans("generate", "--out", str(home / "raw"), "--rows", "-5", env=_env(home, home / "raw"))
    assert done.returncode == 2 and "--rows" in _one_coded_line(done, "E003") and "--help" in done.stderr
    done = _titans("nosuch", env=_env(home, home / "raw"))
    assert done.returncode == 2 and "nosuch" in _one_coded_line(done, "E003")
    bare = _titans(env=_env(home, home / "raw"))  # no command: click's help, not an error
    assert "Usage:" in bare.stdout + bare.stderr and "error:" not in bare.stderr
    # a malformed setting
    done = _titans("status", env=_env(home, home / "raw", TITANS_AS_OF="soon", TITANS_DATABASE_URL=nowhere))
    assert done.returncode == 1 and "TITANS_AS_OF" in _one_coded_line(done, "E003")
    # serve without keys
    done = _titans("serve", env=_env(home, home / "raw", TITANS_DATABASE_URL=nowhere))
    assert done.returncode == 2 and "TITANS_API_KEYS" in _one_coded_line(done, "E003")


def test_with_titans_debug_the_traceback_is_shown(home: Path):
    env = _env(
        home,
        home / "raw",
        TITANS_DEBUG="1",
        TITANS_DATABASE_URL=f"postgresql://x@127.0.0.1:{free_port()}/nowhere",
    )
    done = _titans("status", env=env)
    assert done.returncode == 1 and "Traceback" in done.stderr and "E001" in done.stderr


# ---------------------------------------------------------------------------------------------- embedded server
USER = """
import sys
from titans_assets.lib.db import get_database
from titans_assets.lib.settings import Settings
get_database(Settings.from_env()).ping()
print("up", flush=True)
sys.stdin.readline()
"""


def _postgres_of(home: Path) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["name", "cmdline", "status"]):
        try:
            if p.info["status"] != psutil.STATUS_ZOMBIE and str(home / "pgdata") in " ".join(
                p.info["cmdline"] or []
            ):
                found.append(p)
        except psutil.NoSuchProcess:
            continue
    return found


def _postmaster_pid(home: Path) -> int:
    return int((home / "pgdata" / "postmaster.pid").read_text().split()[0])


def _kill_postgres(home: Path) -> None:
    """SIGKILL the embedded postmaster and its backends (a crash), and wait until they are gone."""
    pm = psutil.Process(_postmaster_pid(home))
    tree = [pm, *pm.children(recursive=True)]
    for p in tree:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(tree, timeout=10)


@pytest.mark.integration
@pytest.mark.parametrize("first_to_stop", ["the first user", "the restarter"])
def test_the_embedded_server_stops_with_its_last_user_after_a_kill_and_a_restart(home: Path, first_to_stop):
    """`titans serve` up (user A), its postmaster killed, `titans status` (user B) restarts it, then both
    stop in either order: no postmaster is left running, and the handle list is empty."""
    env = _env(home, home / "raw")
    users = []
    try:
        for _ in range(2):
            users.append(
                subprocess.Popen(
                    [sys.executable, "-c", USER],
                    env=env,
                    cwd=ROOT,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
            assert users[-1].stdout.readline().strip() == "up"
            if len(users) == 1:
                first = _postmaster_pid(home)
                _kill_postgres(home)
        assert _postmaster_pid(home) != first and _postgres_of(home)  # B started a new one
        order = users if first_to_stop == "the first user" else users[::-1]
        for user in order:
            user.stdin.close()
            assert user.wait(timeout=60) == 0
        deadline = time.monotonic() + 10
        while _postgres_of(home) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _postgres_of(home) == []
        assert json.loads((home / "pgdata" / ".handle_pids.json").read_text()) == []
    finally:
        for user in users:
            if user.poll() is None:
                user.kill()
        for p in _postgres_of(home):
            p.kill()


# ---------------------------------------------------------------------------------------------- failed runs
BAD_SIGN = (
    "Date,Type,Description,Amount,Category,Payment Method,Status,Reference,Receipt URL\n"
    "2026-06-01,Expense,COFFEE HOUSE,-4.50,meals_entertainment,credit_card,paid,Cafe,\n"
    "2026-06-02,Expense,ADOBE *CREATIVE CLD,54.99,software,credit_card,paid,Adobe,\n"
    "2026-06-03,Income,INVOICE 12,1200.00,,bank_transfer,received,ACME,\n"
)


@pytest.mark.integration
def test_no_files_a_bad_selection_and_a_failing_gx_suite_are_e003_and_status_shows_skipped_checks(home: Path):
    landing = home / "raw"
    landing.mkdir()
    env = _env(home, landing)
    assert "no CSV files" in _one_coded_line(_titans("materialize", env=env), "E003")
    assert "selection" in _one_coded_line(_titans("materialize", "--select", "(((", env=env), "E003")
    (landing / "bank.csv").write_text(BAD_SIGN)
    done = _titans("materialize", "--select", "not group:ml", env=env)
    assert done.returncode == 1
    line = _one_coded_line(done, "E003")
    for part in (
        "raw/transactions:gx_raw_transactions",
        "amount_sign_matches_type",
        "bank.csv line 3",
        "titans materialize",
    ):
        assert part in line, line
    assert "DagsterAssetCheckFailedError" not in done.stdout + done.stderr

    status = _titans("status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    checks = json.loads(status.stdout)["checks"]
    gx = checks["raw/transactions:gx_raw_transactions"]
    assert gx["status"] == "failed" and gx["code"] == "E003"
    assert (gx["rule"], gx["file"], gx["line"]) == ("amount_sign_matches_type", "bank.csv", 3)
    assert "amount_sign_matches_type" in gx["message"]
    states = {c["status"] for c in checks.values()}
    assert "running" not in states, states  # the run ended: nothing it planned is running
    skipped = [c for c in checks.values() if c["status"] == "skipped"]
    assert len(skipped) > 50  # the dbt tests and the mart suites it planned
    assert all(
        "gx_raw_transactions" in c["reason"] and "amount_sign_matches_type" in c["reason"] for c in skipped
    )
    text = _titans("status", env=env)
    assert "failed: E003" in text.stdout and f"{len(skipped)} checks skipped: run" in text.stdout, text.stdout
    assert " running" not in text.stdout.split("checks:", 1)[1].split("models", 1)[0].replace("0 running", "")


# ---------------------------------------------------------------------------------------------- fault drill
CHECKSUMS = """
import json
from titans_assets.lib.db import get_database
from titans_assets.lib.settings import Settings
out = {}
with get_database(Settings.from_env()).connect() as conn, conn.cursor() as cur:
    cur.execute("SELECT table_schema || '.' || table_name FROM information_schema.tables "
                "WHERE table_schema IN ('marts', 'features') AND table_type = 'BASE TABLE' ORDER BY 1")
    for (table,) in cur.fetchall():
        cur.execute(f"SELECT count(*), md5(coalesce(string_agg(r, chr(10) ORDER BY r), '')) FROM "
                    f"(SELECT (to_jsonb(t) - 'loaded_at')::text AS r FROM {table} t) x")
        out[table] = list(cur.fetchone())
print(json.dumps(out))
"""


def _mart_checksums(env: dict[str, str]) -> dict[str, list]:
    """Rows and an md5 over the sorted rows (as JSON, load times left out) of every table in marts and
    features, read by a child process: a user of the embedded server that stops it when it leaves."""
    done = subprocess.run(
        [sys.executable, "-c", CHECKSUMS], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def _stop_postgres(home: Path) -> None:
    """Stop an embedded server left running by a drill (the CLI stops its own; this is the safety net)."""
    for p in _postgres_of(home):
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()


@pytest.mark.integration
def test_drill_postgres_sigkilled_during_dbt_then_a_rerun_builds_the_marts_of_a_clean_run(tmp_path: Path):
    from titans_assets.lib.generator import generate

    landing = tmp_path / "raw"
    generate(landing, rows=200, seed=11, end_date=TEST_TODAY, labels_dir=tmp_path / "labels")
    crashed, clean = (new_home(f"titans-{n}-") for n in ("crash", "clean"))
    reference = None
    try:
        for h in (crashed, clean):
            h.chmod(0o755)
        env = _env(crashed, landing)
        proc = subprocess.Popen(
            [*TITANS, "materialize", "--select", "not group:ml"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        killed_at = None
        try:
            for line in proc.stdout:
                if "titans_dbt_models started" in line:
                    time.sleep(0.5)  # dbt is connecting and building
                    _kill_postgres(crashed)
                    killed_at = time.monotonic()
                    break
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert killed_at is not None, err
        ended_after = time.monotonic() - killed_at
        assert proc.returncode == 1
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: E001 ") and " -> next: " in lines[0], err[
            -3000:
        ]
        assert ended_after < 15, ended_after  # not Dagster's half a minute of retries
        assert _postgres_of(crashed) == []  # nothing half-alive left behind

        # The clean reference builds beside the recovery (another home, another server).
        reference = subprocess.Popen(
            [*TITANS, "materialize", "--select", "not group:ml"],
            env=_env(clean, landing),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        # The crashed run's planned checks did not run and nothing runs them: skipped, not running.
        status = _titans("status", "--json", env=env)
        assert status.returncode == 0, status.stderr
        states = {c["status"] for c in json.loads(status.stdout)["checks"].values()}
        assert "running" not in states and "skipped" in states, states

        rerun = _titans("materialize", "--select", "not group:ml", env=env)
        assert rerun.returncode == 0 and "succeeded" in rerun.stdout, (
            rerun.stdout[-2000:] + rerun.stderr[-2000:]
        )
        reference_out = reference.communicate(timeout=600)[0]
        assert reference.returncode == 0, reference_out[-3000:]

        after_crash, from_clean = _mart_checksums(env), _mart_checksums(_env(clean, landing))
        assert after_crash["marts.fct_transactions"][0] > 0 and len(after_crash) >= 4
        assert after_crash == from_clean
    finally:
        if reference is not None and reference.poll() is None:
            reference.kill()
            reference.wait(timeout=30)
        for h in (crashed, clean):
            _stop_postgres(h)
            shutil.rmtree(h, ignore_errors=True)
