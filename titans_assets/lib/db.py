"""One PostgreSQL for everything: the embedded `pgserver` by default, or TITANS_DATABASE_URL.

The same server holds the raw/staging/marts schemas (loader, dbt, Great Expectations) and Dagster's
run/event storage. Everything that needs a connection asks `get_database()`; dbt gets the same
coordinates through environment variables (see `Database.dbt_env`).
"""

from __future__ import annotations

import atexit
import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit, urlunsplit

from titans_assets.lib.settings import Settings

EMBEDDED_DBNAME = "titans"


class DatabaseError(RuntimeError):
    """E001: the database could not be reached. The message is one readable line."""

    code = "E001"


@dataclass(frozen=True)
class Database:
    """Connection coordinates parsed from a libpq URL (TCP host or Unix-socket directory)."""

    url: str
    embedded: bool = False

    def _parts(self) -> dict[str, str]:
        u = urlsplit(self.url)
        if u.scheme.split("+")[0] not in ("postgresql", "postgres"):
            raise DatabaseError(f"E001 unsupported database URL scheme {u.scheme!r}: use postgresql://")
        query = {k: v[-1] for k, v in parse_qs(u.query).items()}
        return {
            "host": query.get("host") or u.hostname or "localhost",
            "port": str(u.port or query.get("port") or 5432),
            "user": unquote(u.username or query.get("user") or "postgres"),
            "password": unquote(u.password or query.get("password") or ""),
            "dbname": (u.path or "/").lstrip("/") or "postgres",
        }

    @property
    def host(self) -> str:
        return self._parts()["host"]

    @property
    def dbname(self) -> str:
        return self._parts()["dbname"]

    def sqlalchemy_url(self) -> str:
        """`postgresql+psycopg2://…`: SQLAlchemy 2.1 would map a bare postgresql:// to psycopg 3."""
        p = self._parts()
        auth = quote(p["user"], safe="") + (":" + quote(p["password"], safe="") if p["password"] else ":")
        if p["host"].startswith("/"):
            return f"postgresql+psycopg2://{auth}@/{p['dbname']}?host={p['host']}&port={p['port']}"
        return f"postgresql+psycopg2://{auth}@{p['host']}:{p['port']}/{p['dbname']}"

    def redacted(self) -> str:
        p = self._parts()
        pw = ":***" if p["password"] else ""
        kind = "embedded" if self.embedded else "external"
        if p["host"].startswith("/"):
            return f"postgresql://{p['user']}{pw}@/{p['dbname']}?host={p['host']} ({kind})"
        return f"postgresql://{p['user']}{pw}@{p['host']}:{p['port']}/{p['dbname']} ({kind})"

    def sibling(self, dbname: str) -> Database:
        """Another database on the same server, same credentials."""
        u = urlsplit(self.url)
        return Database(urlunsplit((u.scheme, u.netloc, "/" + dbname, u.query, "")), embedded=self.embedded)

    def ensure_exists(self) -> None:
        """Create this database (from the server's maintenance database) unless it exists. Callers in
        several processes at once (model steps on two Celery workers) take turns: a session advisory
        lock on the name, held until the connection closes, so only the first one creates it."""
        from psycopg2 import sql

        with self.sibling("postgres").connect(autocommit=True) as conn, conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"titans:create database:{self.dbname}",))
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.dbname,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.dbname)))

    def connect_kwargs(self) -> dict[str, str]:
        return self._parts()

    def ping(self) -> None:
        """Raise DatabaseError (E001) unless the server answers."""
        with self.connect(autocommit=True) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")

    def run_ddl(self, ddl: str, lock_key: int) -> None:
        """Idempotent DDL (CREATE ... IF NOT EXISTS), serialised between concurrent callers by a
        transaction-level advisory lock (two CREATE IF NOT EXISTS at once can still collide)."""
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key,))
            cur.execute(ddl)

    def dbt_env(self) -> dict[str, str]:
        """Environment variables read by dbt_project/profiles.yml."""
        p = self._parts()
        return {
            "TITANS_PG_HOST": p["host"],
            "TITANS_PG_PORT": p["port"],
            "TITANS_PG_USER": p["user"],
            "TITANS_PG_PASSWORD": p["password"],
            "TITANS_PG_DBNAME": p["dbname"],
        }

    @contextmanager
    def connect(self, autocommit: bool = False) -> Iterator[psycopg2.extensions.connection]:  # noqa: F821
        import psycopg2

        try:
            conn = psycopg2.connect(connect_timeout=10, application_name="titans", **self._parts())
        except psycopg2.OperationalError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DatabaseError(f"E001 cannot connect to {self.redacted()}: {first}") from None
        conn.autocommit = autocommit
        try:
            yield conn
            if not autocommit:
                conn.commit()
        except BaseException:
            if not autocommit:
                conn.rollback()
            raise
        finally:
            conn.close()


_lock = threading.Lock()
_embedded_servers: dict[str, object] = {}  # keeps the pgserver handle alive for this process


def _start_embedded(settings: Settings) -> Database:
    key = str(settings.pgdata)
    with _lock:
        server = _embedded_servers.get(key)
        if server is None:
            settings.pgdata.parent.mkdir(parents=True, exist_ok=True)
            with warnings.catch_warnings():  # platformdirs' RuntimeDirWarning (no XDG_RUNTIME_DIR): not ours
                warnings.simplefilter("ignore")
                import pgserver
            try:
                # 'stop': the server stops when the last process using it exits (no orphans);
                # a second process finds the running postmaster and shares it.
                server = pgserver.get_server(settings.pgdata, cleanup_mode="stop")
            except Exception as exc:  # pgserver raises plain exceptions with long pg_ctl output
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise DatabaseError(
                    f"E001 embedded PostgreSQL under {settings.pgdata} did not start: {first}"
                ) from None
            _embedded_servers[key] = server
            # Our release replaces pgserver's exit handler, which stops only the postmaster it found
            # at start (see _release).
            atexit.unregister(server._cleanup)
            atexit.register(_release, server)
    db = Database(server.get_uri("postgres"), embedded=True)
    with db.connect(autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (EMBEDDED_DBNAME,))
        if cur.fetchone() is None:
            cur.execute(f'CREATE DATABASE "{EMBEDDED_DBNAME}"')
    return Database(server.get_uri(EMBEDDED_DBNAME), embedded=True)


def _alive(pid: int) -> bool:
    """A process that runs (a zombie has exited: only its exit status waits to be collected)."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _release(server) -> None:
    """Leave the embedded server's list of users; the last user stops the server that runs *now*.

    pgserver counts its users in a pid file (`<pgdata>/.handle_pids.json`) and, at exit, the last one
    stops the postmaster *it found when it started*. When that postmaster died and another process
    started a new one (a `titans status` while `titans serve` runs), the last user to leave would
    find its own postmaster gone and leave the new one running with nobody in the list. Here the
    last user reads `postmaster.pid` again and stops whatever runs; pids of users that died without
    their exit handlers (SIGKILL) are dropped on the way, so the last live user really is the last.
    (pgserver 0.1.4 internals, pinned in uv.lock.)"""
    import subprocess

    from pgserver._commands import pg_ctl
    from pgserver.utils import PostmasterInfo

    handles = server.global_process_id_list
    if not handles.path.parent.is_dir():  # the data directory is gone (a test's temporary home)
        return
    with server._lock:
        users = [pid for pid in handles.get() if pid != os.getpid() and _alive(pid)]
        handles.put(users)
        if users:
            return
        type(server)._instances.pop(server.pgdata, None)
        info = PostmasterInfo.read_from_pgdata(server.pgdata)
        if info is None or info.pid is None or not _alive(info.pid):
            return
        try:
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user, timeout=60)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            info.process.terminate()
            try:
                info.process.wait(5)
            except Exception:  # noqa: BLE001 - psutil.TimeoutExpired: kill it
                info.process.kill()


def embedded_server_lost(settings: Settings) -> str | None:
    """Why the embedded server this process started or joined is gone (its postmaster exited), or None
    while it runs (or when this process uses none)."""
    with _lock:
        server = _embedded_servers.get(str(settings.pgdata))
    info = getattr(server, "_postmaster_info", None)
    if info is None or info.pid is None or _alive(info.pid):
        return None
    return f"the embedded PostgreSQL (pid {info.pid}) under {settings.pgdata} exited"


def get_database(settings: Settings | None = None) -> Database:
    """The configured database: TITANS_DATABASE_URL if set, else the embedded server (started if needed)."""
    settings = settings or Settings.from_env()
    if settings.database_url:
        host = Database(settings.database_url).host
        # The embedded server's own socket URL, as `titans up` and `titans serve` hand it to their children.
        return Database(
            settings.database_url,
            embedded=host.startswith("/") and Path(host).resolve() == settings.pgdata.resolve(),
        )
    return _start_embedded(settings)


def stop_embedded() -> None:
    """Release this process's embedded servers (each stops once no other process is using it)."""
    with _lock:
        servers = list(_embedded_servers.values())
        _embedded_servers.clear()
    for server in servers:
        atexit.unregister(_release)
        _release(server)
