"""docker-compose.yml and docker/Dockerfile held to the code, since no Docker engine runs here.

Static checks (fast, no server): every service of our image runs a command that resolves to a real
click command of the installed console scripts with options they accept (parsed with click itself,
modules imported, files present); every environment variable it sets is one the code (or MLflow) reads,
and the URLs agree with each other and with the services they name; healthchecks, depends_on
conditions, the Dockerfile's COPY sources, `uv sync --frozen`, the dbt manifest prepared at build time,
and dagster.yaml's storage variable. One integration test runs the compose file's `mlflow server`
command on a free port and logs, promotes and loads a model through it with the compose file's MLflow
variables (the path every app container takes). tests/test_browser_ui.py runs the Dagster, docs and
service commands of this file for real.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import importlib
import inspect
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from importlib.metadata import entry_points
from pathlib import Path
from urllib.parse import urlsplit

import click
import pytest
import yaml
from support import free_port, get_until_up, stop_group

from titans_assets.lib.db import Database

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
VENV_BIN = Path(sys.executable).parent
APP_DIR = "/app"  # WORKDIR of docker/Dockerfile: the repository's root inside the image
IMAGE = "titans-finance:latest"
# The variables a user puts in .env (docker/env.example); values only for interpolating here.
DOTENV = {
    "POSTGRES_PASSWORD": "pw-for-tests",
    "TITANS_API_KEYS": "test-key-0123456789abcdef",
    "TITANS_DASHBOARD_API_KEY": "test-key-0123456789abcdef",
    "GRAFANA_ADMIN_PASSWORD": "grafana-admin-pw",
    "GRAFANA_DB_PASSWORD": "grafana-reader-pw",
}
EXPECTED_SERVICES = {
    "postgres",
    "redis",
    "mlflow",
    "dagster-user-code",
    "dagster-webserver",
    "dagster-daemon",
    "bento",
    "dbt-docs",
    "dashboard",
    "metrics",
    "prometheus",
    "grafana",
}
THIRD_PARTY = {"postgres", "redis", "prometheus", "grafana"}
# Variables of third-party images (the official postgres image's documented settings; Grafana's GF_*).
IMAGE_VARIABLES = {"postgres": {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"}}
IMAGE_VARIABLE_PREFIXES = {"grafana": "GF_"}
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


# ---------------------------------------------------------------------------------------------- helpers
_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$\$")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable syntax: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, $$."""

    def one(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group("name"), m.group("op"), m.group("arg")
        value = env.get(name)
        empty = value is None or (value == "" and op and op.startswith(":"))
        if op in ("-", ":-"):
            return arg if empty else value
        if op in ("?", ":?"):
            if empty:
                raise ValueError(f"required variable {name}: {arg}")
            return value
        return value or ""

    return _VAR.sub(one, text)


def _resolve(node, env):
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [_resolve(v, env) for v in node]
    if isinstance(node, dict):
        return {k: _resolve(v, env) for k, v in node.items()}
    return node


def load_compose(env: dict[str, str] | None = None) -> dict:
    return _resolve(yaml.safe_load(COMPOSE.read_text()), DOTENV if env is None else env)


def ours(compose: dict) -> dict[str, dict]:
    """The services that run this project's image."""
    return {n: s for n, s in compose["services"].items() if s.get("image") == IMAGE}


def argv_of(service: dict) -> list[str]:
    cmd = service["command"]
    return cmd.split() if isinstance(cmd, str) else [str(c) for c in cmd]


def option(argv: list[str], name: str) -> str:
    assert name in argv, f"{name} missing from {argv}"
    return argv[argv.index(name) + 1]


def local_path(value: str) -> Path:
    """A path inside the image (/app/...) as the file of this repository it was copied from."""
    return ROOT / value[len(APP_DIR) + 1 :] if value.startswith(APP_DIR + "/") else Path(value)


def click_command_of(script: str) -> click.Command:
    """The click command behind a console script of the venv (some are `def main(): cli(...)`)."""
    assert (VENV_BIN / script).exists(), f"no console script {script} in {VENV_BIN}"
    found = list(entry_points(group="console_scripts", name=script))
    assert found, f"{script} is not a console script of an installed package"
    obj = found[0].load()
    if isinstance(obj, click.Command):
        return obj
    cli = obj.__globals__.get("cli")
    assert isinstance(cli, click.Command) and "cli(" in inspect.getsource(obj), f"{script}: not a click CLI"
    return cli


def parse_command(argv: list[str]) -> tuple[list[str], click.Context]:
    """Resolve argv to its click command and parse its options exactly as the CLI would (unknown options,
    bad values and missing files raise click errors). Returns (the command path, the parsed context).
    `titans dagster ARGS` hands ARGS to the `dagster` CLI, so those are parsed against it."""
    argv = [str(local_path(a)) if a.startswith(APP_DIR + "/") else a for a in argv]
    if argv[:2] == ["titans", "dagster"]:
        from titans_assets.cli import main

        assert "dagster" in main.commands
        path, ctx = parse_command(["dagster", *argv[2:]])
        return ["titans", *path], ctx
    cmd = click_command_of(argv[0])
    path, args = [argv[0]], argv[1:]
    ctx = click.Context(cmd, info_name=argv[0])
    while isinstance(cmd, click.Group):
        assert args, f"{' '.join(path)} needs a subcommand"
        sub = cmd.get_command(ctx, args[0])
        assert sub is not None, f"`{' '.join(path)}` has no subcommand {args[0]!r}"
        path.append(args[0])
        cmd, args = sub, args[1:]
        ctx = click.Context(cmd, info_name=path[-1], parent=ctx)
    return path, cmd.make_context(path[-1], list(args), parent=ctx.parent)


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def dockerignored(path: str) -> bool:
    patterns = [
        p.strip()
        for p in (ROOT / ".dockerignore").read_text().splitlines()
        if p.strip() and not p.startswith("#")
    ]
    parts = Path(path).parts
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    return any(
        fnmatch.fnmatch(pre, pat) or fnmatch.fnmatch(pre, pat.removeprefix("**/"))
        for pat in patterns
        for pre in prefixes
    )


def mounts(svc: dict) -> dict[str, Path]:
    """Container path -> the repository file or folder a service mounts (named volumes left out)."""
    out = {}
    for v in svc.get("volumes", []):
        source, target = v.split(":")[:2]
        if source.startswith("./"):
            out[target] = ROOT / source[2:]
    return out


def mounted_text(svc: dict) -> str:
    files = []
    for path in mounts(svc).values():
        files += (
            [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path] if path.exists() else []
        )
    return "\n".join(
        p.read_text() for p in files if p.suffix in ("", ".sh", ".sql", ".yml", ".yaml", ".json")
    )


def project_text() -> str:
    files = [
        *(ROOT / "titans_assets").rglob("*.py"),
        *(ROOT / "bento").glob("*.py"),
        *(ROOT / "dbt_project").glob("*.yml"),
        ROOT / "dagster.yaml",
    ]
    return "\n".join(p.read_text() for p in files)


# ---------------------------------------------------------------------------------------------- the file
def test_services_and_required_secrets():
    compose = load_compose()
    assert EXPECTED_SERVICES <= set(compose["services"])
    assert set(ours(compose)) == EXPECTED_SERVICES - THIRD_PARTY
    for name, svc in ours(compose).items():
        assert svc["build"] == {"context": ".", "dockerfile": "docker/Dockerfile"}, name
        assert (ROOT / svc["build"]["dockerfile"]).exists()
    # Secrets come from .env: without them `docker compose` refuses to start instead of using a default.
    for secret in DOTENV:
        with pytest.raises(ValueError, match=f"required variable {secret}"):
            load_compose({k: v for k, v in DOTENV.items() if k != secret})
    # No credentials written into the file: every password in a URL is the .env variable.
    for password in re.findall(r"://[^/@\s:]+:([^@\s]+)@", COMPOSE.read_text()):
        assert password.startswith("${POSTGRES_PASSWORD"), password
    published = [p.split(":")[0] for s in compose["services"].values() for p in s.get("ports", [])]
    assert len(published) == len(set(published)), published


def test_healthchecks_and_depends_on():
    compose = load_compose()
    services = compose["services"]
    for name, svc in services.items():
        assert "healthcheck" in svc and svc["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
        deps = svc.get("depends_on", {})
        assert isinstance(deps, dict), f"{name}: depends_on needs conditions"
        for dep, spec in deps.items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            assert spec.get("condition") in CONDITIONS, f"{name} -> {dep}: {spec}"
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], (
                    f"{name} waits for {dep} to be healthy: it has no healthcheck"
                )
    # Every service of our image waits for PostgreSQL to be healthy (they all read the database).
    for name, svc in ours(compose).items():
        assert svc["depends_on"]["postgres"]["condition"] == "service_healthy", name
    # No cycles.
    state: dict[str, str] = {}

    def visit(n: str) -> None:
        assert state.get(n) != "open", f"depends_on cycle through {n}"
        if state.get(n) != "done":
            state[n] = "open"
            for d in services[n].get("depends_on", {}):
                visit(d)
            state[n] = "done"

    for n in services:
        visit(n)


def test_http_healthchecks_probe_the_port_the_command_serves():
    compose = load_compose()
    script = ROOT / "docker" / "healthcheck.py"
    for name, svc in ours(compose).items():
        argv, test = argv_of(svc), svc["healthcheck"]["test"]
        if test[1:3] == ["python", f"{APP_DIR}/docker/healthcheck.py"]:
            assert local_path(test[2]) == script and script.exists()
            url = urlsplit(test[3])
            assert url.hostname == "127.0.0.1" and str(url.port) == option(argv, "--port"), (name, test)
            published = [p.rsplit(":", 1)[1] for p in svc.get("ports", [])]
            assert published in ([], [str(url.port)]), (name, published)
        else:  # a CLI probe (the code server's gRPC ping, the daemon's heartbeat): a real command
            parse_command(test[1:])
    code = compose["services"]["dagster-user-code"]
    assert option(code["healthcheck"]["test"], "--port") == option(argv_of(code), "--port")


def test_every_command_resolves_to_real_commands_and_options():
    compose = load_compose()
    seen = {}
    for name, svc in ours(compose).items():
        path, ctx = parse_command(argv_of(svc))  # raises on an unknown command, option or missing file
        seen[name] = (" ".join(path), ctx.params)
        modules = ctx.params.get("module_name") or ()
        for module in [modules] if isinstance(modules, str) else modules:
            importlib.import_module(module)  # what the code server loads
    assert seen["dagster-user-code"][0] == "titans dagster code-server start"
    assert seen["dagster-user-code"][1]["module_name"] == "titans_assets.definitions"
    assert seen["dagster-webserver"][0] == "dagster-webserver"
    assert seen["dagster-daemon"][0] == "dagster-daemon run"
    assert seen["mlflow"][0] == "mlflow server" and seen["mlflow"][1]["serve_artifacts"] is True
    assert seen["bento"][0] == "titans serve" and seen["dbt-docs"][0] == "titans docs"
    for name in ("bento", "dbt-docs", "dashboard", "dagster-webserver", "mlflow", "dagster-user-code"):
        assert seen[name][1]["host"] == "0.0.0.0", f"{name} must listen beyond the container's loopback"


def test_dashboard_uses_the_project_command():
    from titans_assets.cli import main

    if "dashboard" not in main.commands:
        pytest.skip("`titans dashboard` is not registered yet (titans_assets/commands/dashboard.py)")
    compose = load_compose()
    path, ctx = parse_command(argv_of(compose["services"]["dashboard"]))
    assert " ".join(path) == "titans dashboard" and ctx.params["port"] == 8501


def test_workspace_points_at_the_code_server():
    compose = load_compose()
    code = argv_of(compose["services"]["dagster-user-code"])
    for name in ("dagster-webserver", "dagster-daemon"):
        workspace = local_path(option(argv_of(compose["services"][name]), "--workspace"))
        (entry,) = yaml.safe_load(workspace.read_text())["load_from"]
        grpc = entry["grpc_server"]
        assert grpc["host"] == "dagster-user-code" and str(grpc["port"]) == option(code, "--port"), grpc
        assert compose["services"][name]["depends_on"]["dagster-user-code"]["condition"] == "service_healthy"
    # The same code location name as the laptop's workspace, so runs and schedules keep their origin.
    laptop = yaml.safe_load((ROOT / "workspace.yaml").read_text())["load_from"][0]["python_module"]
    assert grpc["location_name"] == laptop["location_name"]
    assert laptop["module_name"] == option(code, "--module-name")


def test_environment_variables_are_read_by_the_code_and_agree():
    import mlflow.environment_variables as mlflow_env

    compose = load_compose()
    code = project_text()
    for name, svc in compose["services"].items():
        mounted = mounted_text(svc)
        for var in svc.get("environment", {}):
            known = (
                re.search(rf"[\"'\s]{var}[\"')\s]", code) is not None
                or hasattr(mlflow_env, var)
                or var in IMAGE_VARIABLES.get(name, set())
                or var.startswith(IMAGE_VARIABLE_PREFIXES.get(name, "\0"))
                or re.search(rf"\$\{{?{var}\b", mounted) is not None
            )  # a mounted file of ours reads it
            assert known, f"{name}: nothing reads {var}"
    pg = compose["services"]["postgres"]["environment"]
    for name, svc in ours(compose).items():
        env = svc["environment"]
        if argv_of(svc)[0] == "titans":  # else the CLI would start an embedded server inside the container
            assert "TITANS_DATABASE_URL" in env, name
        if "TITANS_DATABASE_URL" in env:
            db = Database(env["TITANS_DATABASE_URL"])
            parts = db.connect_kwargs()
            assert (parts["host"], parts["port"], parts["user"], parts["password"], parts["dbname"]) == (
                "postgres",
                "5432",
                pg["POSTGRES_USER"],
                pg["POSTGRES_PASSWORD"],
                pg["POSTGRES_DB"],
            ), name
            # dagster.yaml's storage: the URL `titans dagster` derives is the one the plain dagster commands get.
            assert env["TITANS_DAGSTER_PG_URL"] == db.sqlalchemy_url(), name
            assert env["DAGSTER_HOME"] == env["TITANS_HOME"] + "/dagster", name  # Settings.dagster_home
            mlflow_url = urlsplit(env["TITANS_MLFLOW_TRACKING_URI"])
            assert mlflow_url.hostname == "mlflow" and str(mlflow_url.port) == option(
                argv_of(compose["services"]["mlflow"]), "--port"
            ), name
            assert env["TITANS_MLFLOW_ARTIFACTS"].startswith("mlflow-artifacts:"), name
            assert urlsplit(env["TITANS_REDIS_URL"]).hostname == "redis", name
    for name in ("dagster-webserver", "dagster-daemon", "dagster-user-code"):
        assert {"DAGSTER_HOME", "TITANS_DAGSTER_PG_URL"} <= set(ours(compose)[name]["environment"]), name
    bento = compose["services"]["bento"]["environment"]
    assert bento.get("TITANS_API_KEYS") or bento.get("TITANS_API_KEYS_FILE")
    dash = compose["services"]["dashboard"]["environment"]
    url = urlsplit(dash["TITANS_SERVICE_URL"])
    assert url.hostname == "bento" and str(url.port) == option(
        argv_of(compose["services"]["bento"]), "--port"
    )
    assert "TITANS_API_KEY" in dash
    assert compose["services"]["dashboard"]["depends_on"]["bento"]["condition"] == "service_healthy"


def test_dagster_yaml_storage_reads_the_variable_compose_sets():
    storage = yaml.safe_load((ROOT / "dagster.yaml").read_text())["storage"]["postgres"]["postgres_url"]
    var = storage["env"]
    for name in ("dagster-webserver", "dagster-daemon", "dagster-user-code"):
        assert var in ours(load_compose())[name]["environment"], f"{name} does not set {var}"


def test_mlflow_store_database_is_created_by_the_postgres_init_script():
    compose = load_compose()
    backend = option(argv_of(compose["services"]["mlflow"]), "--backend-store-uri")
    dbname = urlsplit(backend).path.lstrip("/")
    assert urlsplit(backend).hostname == "postgres" and backend.startswith("postgresql+psycopg2://")
    scripts = [
        src
        for dst, src in mounts(compose["services"]["postgres"]).items()
        if dst.startswith("/docker-entrypoint-initdb.d/")
    ]
    assert any(re.search(rf"CREATE DATABASE {dbname}\s*;", script.read_text()) for script in scripts)
    # The same name the laptop's default store uses (`<database>_mlflow`).
    assert dbname == compose["services"]["postgres"]["environment"]["POSTGRES_DB"] + "_mlflow"
    destination = option(argv_of(compose["services"]["mlflow"]), "--artifacts-destination")
    assert any(v.endswith(":" + destination) for v in compose["services"]["mlflow"]["volumes"])


def test_dockerfile_builds_from_the_lock_and_prepares_the_manifest():
    steps = dockerfile_instructions()
    assert steps[0] == ("FROM", "python:3.11-slim")
    env = " ".join(rest for kw, rest in steps if kw == "ENV")
    compose_env = ours(load_compose())["bento"]["environment"]
    for var in ("DAGSTER_HOME", "TITANS_HOME", "TITANS_LANDING_DIR"):
        assert f"{var}={compose_env[var]}" in env, var
    assert ("WORKDIR", APP_DIR) in steps
    copied = []
    for kw, rest in steps:
        if kw == "COPY" and not rest.startswith("--from"):
            *sources, _dest = rest.split()
            for src in sources:
                assert (ROOT / src).exists(), f"COPY {src}: no such file"
                assert not dockerignored(src), f"COPY {src}: excluded by .dockerignore"
                copied.append(src)
    runs = [rest for kw, rest in steps if kw == "RUN"]
    sync = [
        i for i, r in enumerate(runs) if "uv sync --frozen --no-dev" in r and "--no-install-project" not in r
    ]
    prepare = "dagster-dbt project prepare-and-package --file titans_assets/defs/transform/project.py"
    assert sync, "no `uv sync --frozen --no-dev` of the project"
    assert any(prepare in r for r in runs[sync[-1] :]), "the dbt manifest is not prepared after the sync"
    assert prepare in (ROOT / "Makefile").read_text()  # the command `make prepare` runs
    assert (ROOT / "titans_assets/defs/transform/project.py").exists()
    # Everything the commands, the workspace and the healthchecks use is in the image.
    for needed in (
        "uv.lock",
        "pyproject.toml",
        "titans_assets",
        "bento",
        "dbt_project",
        "dagster.yaml",
        "docker",
    ):
        assert needed in copied, needed
    assert 'cp dagster.yaml "$DAGSTER_HOME/dagster.yaml"' in " ".join(runs)
    assert any(kw == "USER" and rest != "root" for kw, rest in steps)
    # The build context leaves out local state and secrets.
    for path in (
        ".venv/bin/python",
        ".titans/pgdata",
        ".env",
        "data/raw/x.csv",
        "dbt_project/target/manifest.json",
    ):
        assert dockerignored(path), path


def test_prometheus_scrapes_the_services_the_compose_file_runs():
    compose = load_compose()
    services = compose["services"]
    prom = services["prometheus"]
    config_dir = mounts(prom)["/etc/prometheus"]
    assert config_dir == ROOT / "docker" / "prometheus"
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom["command"]
    config = yaml.safe_load((config_dir / "prometheus.yml").read_text())
    for rules in config["rule_files"]:
        assert (config_dir / rules).exists(), rules  # relative to the config file, as Prometheus resolves it
    targets = {t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert targets == {
        f"bento:{option(argv_of(services['bento']), '--port')}",
        f"metrics:{option(argv_of(services['metrics']), '--port')}",
    }
    path, ctx = parse_command(argv_of(services["metrics"]))
    assert " ".join(path) == "titans metrics" and ctx.params["host"] == "0.0.0.0"
    assert {d for d in prom["depends_on"]} == {"bento", "metrics"}


def test_grafana_is_provisioned_from_the_repository():
    compose = load_compose()
    services = compose["services"]
    grafana = services["grafana"]
    m = mounts(grafana)
    provisioning = m["/etc/grafana/provisioning"]
    sources = yaml.safe_load((provisioning / "datasources" / "datasources.yml").read_text())["datasources"]
    by_type = {d["type"]: d for d in sources}
    prom_port = [p.rsplit(":", 1)[1] for p in services["prometheus"]["ports"]][0]
    assert by_type["prometheus"]["url"] == f"http://prometheus:{prom_port}"
    pg = by_type["grafana-postgresql-datasource"]
    assert pg["url"] == "postgres:5432"
    assert pg["jsonData"]["database"] == services["postgres"]["environment"]["POSTGRES_DB"]
    # The role the postgres init script creates is the one Grafana logs in as, with the same password.
    assert pg["user"] == "${GRAFANA_DB_USER}" and pg["secureJsonData"]["password"] == "${GRAFANA_DB_PASSWORD}"
    for key in ("GRAFANA_DB_USER", "GRAFANA_DB_PASSWORD"):
        assert grafana["environment"][key] == services["postgres"]["environment"][key], key
    init = mounts(services["postgres"])["/docker-entrypoint-initdb.d/20-grafana-reader.sh"]
    assert "GRAFANA_DB_PASSWORD" in init.read_text() and os.access(init, os.X_OK)
    providers = yaml.safe_load((provisioning / "dashboards" / "dashboards.yml").read_text())["providers"]
    (provider,) = providers
    assert m[provider["options"]["path"]] == ROOT / "docker" / "grafana" / "dashboards"
    assert sorted(p.name for p in m[provider["options"]["path"]].glob("*.json")) == [
        "models.json",
        "money.json",
        "pipeline.json",
        "service.json",
    ]
    assert grafana["depends_on"]["prometheus"]["condition"] == "service_healthy"


def test_the_checks_fail_on_a_broken_file():
    """The checks above catch a wrong option, an unknown subcommand and an unread variable."""
    compose = load_compose()
    bad = dict(compose["services"]["bento"], command=["titans", "serve", "--prot", "3000"])
    with pytest.raises(click.UsageError):
        parse_command(argv_of(bad))
    with pytest.raises(AssertionError, match="no subcommand"):
        parse_command(["titans", "dagster", "code-sever", "start"])
    with pytest.raises(click.BadParameter):
        parse_command(["dagster-webserver", "--workspace", f"{APP_DIR}/docker/no-such-workspace.yaml"])
    assert re.search(r"[\"'\s]TITANS_DATABSE_URL[\"')\s]", project_text()) is None
    assert dockerignored(".git/HEAD") and not dockerignored("titans_assets/cli.py")


# ---------------------------------------------------------------------------------------------- MLflow, for real
@pytest.mark.integration
def test_mlflow_service_command_serves_the_registry_over_http(embedded_db, tmp_path, monkeypatch):
    """The compose file's `mlflow server` command (its port, store and artifact folder swapped for a free
    port, a scratch database and a temporary folder) with the app containers' MLflow variables: a model
    is logged, promoted and loaded back through the server (artifacts land in the server's folder, not
    the client's), and the Host headers the containers and a browser send are accepted, others refused."""
    import psutil
    from conftest import scratch_database

    from titans_assets.lib.generator import generate
    from titans_assets.lib.ml import cashflow, catalog
    from titans_assets.lib.ml.tracking import Registry
    from titans_assets.lib.settings import Settings

    compose = load_compose()
    argv = argv_of(compose["services"]["mlflow"])
    port, artifacts = free_port(), tmp_path / "mlartifacts"
    with scratch_database(embedded_db) as db:
        store = db.sibling(db.dbname + "_mlflow")
        store.ensure_exists()
        swap = {
            "--host": "127.0.0.1",
            "--port": str(port),
            "--workers": "1",
            "--backend-store-uri": store.sqlalchemy_url(),
            "--artifacts-destination": str(artifacts),
        }
        for flag, value in swap.items():
            argv[argv.index(flag) + 1] = value
        env = {**os.environ, **compose["services"]["mlflow"]["environment"]}
        log = tmp_path / "mlflow.log"
        proc = subprocess.Popen(
            [str(VENV_BIN / argv[0]), *argv[1:]],
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            process_group=0,
        )
        tree = None  # the server's processes once it is up (its workers outlive a killed parent)
        try:
            assert get_until_up(f"http://127.0.0.1:{port}/health", proc, timeout=180), log.read_text()[-3000:]
            tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
            healthcheck = compose["services"]["mlflow"]["healthcheck"]["test"][1:]
            probe = [
                sys.executable,
                str(local_path(healthcheck[1])),
                healthcheck[2].replace(":5000", f":{port}"),
            ]
            assert subprocess.run(probe, timeout=30).returncode == 0

            def status(host: str) -> int:
                req = urllib.request.Request(
                    f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=1",
                    headers={"Host": host},
                )
                try:
                    with urllib.request.urlopen(req, timeout=10) as resp:
                        return resp.status
                except urllib.error.HTTPError as exc:
                    return exc.code

            assert status("mlflow:5000") == 200 and status("localhost:5000") == 200
            assert status("attacker.example:5000") == 403

            app_env = dict(ours(compose)["bento"]["environment"])
            app_env["TITANS_MLFLOW_TRACKING_URI"] = f"http://127.0.0.1:{port}"
            # Only our explicit URI: the registry must not lean on MLflow's process-wide one.
            monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
            settings = Settings.from_env({**app_env, "TITANS_HOME": str(tmp_path / "home")})
            registry = Registry.from_settings(settings, db)
            assert (
                registry.tracking_uri == f"http://127.0.0.1:{port}"
                and registry.artifact_root == "mlflow-artifacts:/"
            )

            generate(tmp_path / "raw", rows=400, seed=3, end_date=dt.date(2026, 6, 30))
            from conftest import warehouse_rows

            frame = warehouse_rows(tmp_path / "raw")
            daily = frame.groupby("txn_date")["amount"].sum()
            import pandas as pd

            daily.index = pd.to_datetime(daily.index)
            daily = daily.reindex(
                pd.date_range(daily.index.min(), daily.index.max(), freq="D"), fill_value=0.0
            )
            result = cashflow.train(
                pd.DataFrame({"metric_date": daily.index, "net_flow": daily.to_numpy()}),
                candidates=("seasonal_naive_7", "mean_28"),
                n_origins=2,
                make_figures=False,
            )
            spec = next(s for s in catalog.SPECS if s.key == "cashflow")
            run_id, version = registry.log_training(spec.name, result, spec.example_frame())
            registry.promote(spec.name, version, "compose test")
            champion = registry.champion(spec.name)
            assert champion is not None and champion.version == version and champion.run_id == run_id
            assert len(champion.model.predict(spec.example_frame())) > 0
            # The client wrote nothing locally: the files are in the server's artifact folder.
            assert (artifacts / "titans" / run_id / "artifacts" / "model" / "MLmodel").exists()
            assert not (tmp_path / "home" / "mlartifacts").exists()
        finally:
            alive = stop_group(proc, tree, grace=30)
        assert not alive, f"processes left behind: {[p.pid for p in alive]}"
