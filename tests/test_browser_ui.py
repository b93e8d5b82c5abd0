"""The UIs in a real browser (headless Chromium): the Dagster asset graph and catalog, the dbt docs site
and the service's Swagger page, each started with the command docker-compose.yml gives its service
(host and port swapped for a free loopback port) and probed with that service's healthcheck command.

One prepared warehouse is shared by the module: generated ledgers materialized (`titans materialize
--select "not group:ml"`) into a scratch database on the session's embedded PostgreSQL, so the pages
show real state (materializations, check results, the catalog's column types). Dagster runs as in the
compose file, without the daemon (nothing here needs sensors or the run queue): the code server
(`titans dagster code-server start`) and the webserver reading docker/workspace.yaml pointed at it.
Every server is stopped by the test, whole process tree, and nothing may be left running.
Screenshots go to test-artifacts/ (the `page` fixture).
"""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from conftest import TEST_TODAY, child_env, scratch_database
from support import free_port, stop_group
from test_compose import argv_of, load_compose, local_path

from titans_assets.lib.db import Database
from titans_assets.lib.generator import generate

pytestmark = [pytest.mark.browser, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
# Our assets as the Dagster UI names them, and the groups of the graph (dbt's included).
ASSETS = [
    "raw / transactions",
    "raw / quarantine",
    "raw / files",
    "marts / fct_transactions",
    "marts / fct_daily_metrics",
    "ml / category_champion",
    "ml / cashflow_champion",
]
GROUPS = ["ingest", "seeds", "staging", "intermediate", "marts", "features", "ml"]
# The data assets (what the pages show); the models are not needed.
DATA_ASSETS = "not group:ml"
MARTS = ["fct_transactions", "fct_daily_metrics", "fct_monthly_category", "dim_files"]


# ---------------------------------------------------------------------------------------------- processes
def swap(argv: list[str], **values: str) -> list[str]:
    """The compose command with some `--option value` pairs replaced (host, port, ...)."""
    out = list(argv)
    for name, value in values.items():
        flag = "--" + name.replace("_", "-")
        assert flag in out, f"{flag} not in {argv}"
        out[out.index(flag) + 1] = value
    exe = VENV_BIN / out[0]
    return [str(exe) if exe.exists() else out[0], *out[1:]]


def healthcheck_argv(service: dict, port: int) -> list[str]:
    """The service's compose healthcheck, run here: its port swapped, /app/... mapped to this checkout."""
    test = [str(local_path(a)) if a.startswith("/app/") else a for a in service["healthcheck"]["test"][1:]]
    if test[0] == "python":
        return [sys.executable, test[1], re.sub(r":\d+/", f":{port}/", test[2], count=1)]
    return swap(test, port=str(port))


def wait_healthy(service: dict, port: int, proc: subprocess.Popen, log: Path, timeout: float = 240) -> None:
    probe = healthcheck_argv(service, port)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args} exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        if subprocess.run(probe, capture_output=True, timeout=60).returncode == 0:
            return
        time.sleep(1)
    raise AssertionError(
        f"{proc.args} not healthy in {timeout}s ({' '.join(probe)}):\n{log.read_text()[-3000:]}"
    )


def wait_for_line(proc: subprocess.Popen, log: Path, text: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{proc.args[:4]}: no {text!r}:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)


@contextmanager
def running(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """A server in its own process group; on exit SIGTERM (the `titans` wrappers pass it on to their
    child), then every process of its tree must be gone."""

    proc = subprocess.Popen(
        argv, env=env, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT, process_group=0
    )
    try:
        yield proc
    finally:
        alive = stop_group(proc)
        assert not alive, f"{argv[:3]} left processes behind: {[(p.pid, p.name()) for p in alive]}"


# ---------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def stack(browser, embedded_db: Database, tmp_path_factory) -> Iterator[SimpleNamespace]:
    """Everything the tests open, started while the data is being built (the servers do not need it at
    start, except the docs site, whose catalog is read from the warehouse when it starts). Asks for
    `browser` first, so a machine without Chromium skips before anything starts."""
    root = tmp_path_factory.mktemp("browser")
    landing = root / "data" / "raw"
    generate(landing, rows=600, seed=5, end_date=TEST_TODAY, labels_dir=root / "data" / "labels")
    services = load_compose()["services"]
    ports = {name: free_port() for name in ("code", "dagster", "docs", "service")}
    key = "ui-test-" + secrets.token_urlsafe(16)
    with scratch_database(embedded_db) as db, ExitStack() as stack:
        env = child_env("TITANS_", "DAGSTER_", "DBT_", "MLFLOW_")
        env |= {
            "TITANS_HOME": str(root / "home"),
            "TITANS_LANDING_DIR": str(landing),
            "TITANS_DATABASE_URL": db.url,
        }
        build = stack.enter_context(
            running(
                [str(VENV_BIN / "titans"), "materialize", "--select", DATA_ASSETS],
                env,
                root / "materialize.log",
            )
        )

        # Dagster as compose runs it, without the daemon (nothing here needs sensors or the run queue):
        # the code server, and the webserver reading docker/workspace.yaml pointed at it, with
        # DAGSTER_HOME and dagster.yaml's storage URL as compose sets them.
        code = services["dagster-user-code"]
        code_proc = stack.enter_context(
            running(
                swap(argv_of(code), host="127.0.0.1", port=str(ports["code"])), env, root / "code-server.log"
            )
        )
        # `titans serve` as compose runs it (one worker here); no champions needed for its documentation.
        bento = services["bento"]
        bento_proc = stack.enter_context(
            running(
                swap(argv_of(bento), host="127.0.0.1", port=str(ports["service"]), workers="1"),
                env | {"TITANS_API_KEYS": key},
                root / "serve.log",
            )
        )

        wait_for_line(code_proc, root / "code-server.log", "Started Dagster code proxy server")
        wait_healthy(code, ports["code"], code_proc, root / "code-server.log")  # compose's healthcheck
        workspace = yaml.safe_load((ROOT / "docker" / "workspace.yaml").read_text())
        workspace["load_from"][0]["grpc_server"] |= {"host": "127.0.0.1", "port": ports["code"]}
        (root / "workspace.yaml").write_text(yaml.safe_dump(workspace))
        web = services["dagster-webserver"]
        web_proc = stack.enter_context(
            running(
                swap(
                    argv_of(web),
                    host="127.0.0.1",
                    port=str(ports["dagster"]),
                    workspace=str(root / "workspace.yaml"),
                ),
                env
                | {
                    "DAGSTER_HOME": str(root / "home" / "dagster"),
                    "TITANS_DAGSTER_PG_URL": db.sqlalchemy_url(),
                },
                root / "webserver.log",
            )
        )

        assert build.wait(timeout=600) == 0, (root / "materialize.log").read_text()[-3000:]
        assert "succeeded" in (root / "materialize.log").read_text()
        docs = services["dbt-docs"]
        docs_proc = stack.enter_context(
            running(swap(argv_of(docs), host="127.0.0.1", port=str(ports["docs"])), env, root / "docs.log")
        )

        wait_healthy(web, ports["dagster"], web_proc, root / "webserver.log")
        wait_healthy(bento, ports["service"], bento_proc, root / "serve.log")
        wait_healthy(docs, ports["docs"], docs_proc, root / "docs.log")
        url = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        yield SimpleNamespace(dagster=url["dagster"], docs=url["docs"], service=url["service"], key=key)


def dismiss_dagster_dialog(page) -> None:
    """The webserver's one-time 'Join the Dagster community' dialog covers the page: skip it."""
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(state="visible", timeout=5_000)
        skip.click()
        skip.wait_for(state="hidden", timeout=5_000)
    except Exception:  # noqa: BLE001 - playwright's TimeoutError: the dialog did not show this time
        pass


# ---------------------------------------------------------------------------------------------- tests
def test_dagster_asset_graph_shows_our_groups_and_assets(stack, page):
    dagster_ui = stack.dagster
    page.goto(f"{dagster_ui}/asset-groups")
    for group in GROUPS:  # the graph's group list (the dbt groups come from the dbt project's folders)
        page.get_by_text(group, exact=True).first.wait_for()
    dismiss_dagster_dialog(page)
    # One group's graph: the dbt marts with their check results and materializations from our run.
    # The group's graph: the marts in view show their check results and materializations from our run
    # (the group has grown past what one window shows legibly); its List tab names every mart.
    page.set_viewport_size({"width": 2560, "height": 1600})
    page.goto(f"{dagster_ui}/locations/titans_assets/asset-groups/marts")
    page.get_by_text("fct_transactions", exact=True).first.wait_for()
    page.get_by_text("Materialized").first.wait_for()
    checks = re.findall(r"(\d+) / (\d+) Passed", page.inner_text("body"))
    assert checks and all(a == b and int(a) > 0 for a, b in checks), checks
    dismiss_dagster_dialog(page)
    page.get_by_text("List", exact=True).first.click()
    for name in MARTS:
        page.get_by_text(f"marts / {name}", exact=True).first.wait_for()


def test_dagster_catalog_lists_our_assets(stack, page):
    # The list is virtualised and alphabetical: a tall window shows the marts rows without scrolling.
    page.set_viewport_size({"width": 1440, "height": 2400})
    page.goto(f"{stack.dagster}/assets")
    page.get_by_text("marts / fct_transactions", exact=True).first.wait_for()
    dismiss_dagster_dialog(page)
    # The list is virtualised: scroll through it, collecting the rows it shows.
    page.mouse.move(800, 500)
    seen: set[str] = set()
    previous = None
    for _ in range(60):
        text = page.inner_text("body")
        seen |= {a for a in ASSETS if re.search(rf"^{re.escape(a)}$", text, re.M)}
        if seen == set(ASSETS) or text == previous:
            break
        previous = text
        page.mouse.wheel(0, 600)
        page.wait_for_timeout(300)
    assert [a for a in ASSETS if a not in seen] == []
    # The instance's state per row (a row reads: name, full name, description, location, group, status;
    # statuses load after the row shows): the data were materialized by our run, the models were not.
    for asset, expected in [
        ("marts / fct_transactions", "Materialized"),
        ("ml / category_champion", "Never materialized"),
    ]:
        page.get_by_text(asset, exact=True).first.scroll_into_view_if_needed()
        pattern = rf"^{re.escape(asset)}\n(?:[^\n]*\n){{0,8}}?(Materialized|Never materialized)$"
        deadline, found = time.monotonic() + 60, None
        while found is None and time.monotonic() < deadline:
            found = re.search(pattern, page.inner_text("body"), re.M)
            page.wait_for_timeout(500)
        assert found and found.group(1) == expected, (asset, found and found.group(1))


def test_dbt_docs_site_lists_the_models_with_the_warehouse_catalog(stack, page):
    docs_site = stack.docs
    page.goto(f"{docs_site}/#!/model/model.titans.fct_transactions", wait_until="domcontentloaded")
    page.get_by_text("fct_transactions incremental").first.wait_for()  # its materialization
    for name in MARTS:  # the project tree, opened at the marts folder
        page.get_by_text(name, exact=True).first.wait_for()
    body = page.inner_text("body")
    # Column types come from the catalog, i.e. from the tables the run built in the warehouse.
    for column, data_type in [("transaction_id", "text"), ("txn_date", "date"), ("amount", "numeric(14,2)")]:
        assert re.search(rf"\n{column}\s*\n\s*{re.escape(data_type)}\s*\n", body), (column, data_type)
    assert "int_transactions_deduped" in body  # Depends On


def test_service_swagger_page_lists_the_endpoints_and_calls_one(stack, page):
    from titans_assets.lib.serving.openapi import spec

    page.goto(stack.service + "/", wait_until="domcontentloaded")
    page.get_by_text("/predict/category", exact=True).first.wait_for()
    listed = page.inner_text("#swagger-ui")
    for path in spec()["paths"]:
        assert path in listed, path
    # Authorize with the key, then run GET /models/status from the page.
    page.get_by_role("button", name="Authorize").first.click()
    page.locator(".modal-ux input[type=text], .modal-ux input[type=password]").first.fill(stack.key)
    page.locator(".modal-ux button.authorize").click()
    page.locator(".modal-ux button.btn-done").click()
    operation = (
        page.locator("#operations-models-get_models_status, .opblock-get")
        .filter(has_text="/models/status")
        .first
    )
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()
    response = operation.locator(".live-responses-table .response").first
    response.wait_for()
    assert response.locator(".response-col_status").inner_text().strip() == "200"
    body = operation.locator(
        ".live-responses-table .microlight, .live-responses-table pre"
    ).first.inner_text()
    assert "titans_category" in body and "rate_limits" in body
