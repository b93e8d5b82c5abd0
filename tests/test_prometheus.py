"""Prometheus and Grafana for real (issue 21): Debian's `prometheus` package scrapes a running `titans serve`
(two workers) and `titans metrics` on a warehouse loaded by a real Dagster run, and every PromQL expression
of every Grafana panel and of every alert rule is run through its HTTP API after traffic.

- `promtool check config` / `check rules` on docker/prometheus/ (the committed files, and the test's copy
  whose targets point at the loopback ports);
- a panel expression must answer without error and with at least one series;
- an alert expression must answer without error; the ones that are empty while all is well (a 5xx rate
  with no 5xx, a failing check when every check passes...) are checked through their inner selectors:
  every metric they read must have series (else the alert could never fire, e.g. a misspelt name);
- Prometheus itself evaluates the rules: each rule group reports health "ok";
- the service ran with TITANS_LOG_FORMAT=json: its workers' lines are JSON objects, the access lines carry
  the request id, model, version and latency, and neither the API key nor a request body is in the log;
- Grafana is not packaged here: the dashboards' JSON structure and datasource uids are checked, and each
  PostgreSQL panel's SQL runs (macros expanded) on the test's warehouse: raw tables loaded by the Dagster
  run, marts built by `dbt build` (tests excluded) of the models the panels read.

Needs /usr/bin/prometheus and /usr/bin/promtool (`apt-get install prometheus`; .ci/run installs it):
skipped, saying so, without them. Every process started here is stopped by the test.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import child_env
from support import free_port, get_until_up, stop_group
from test_serving_http import AUTH, KEY, REQUESTS, Server, client_ip, fresh, serving_models

from titans_assets.lib.observability import pipeline as P
from titans_assets.lib.observability.metrics import model_of

REPO = Path(__file__).resolve().parents[1]
PROM_DIR = REPO / "docker" / "prometheus"
GRAFANA_DIR = REPO / "docker" / "grafana"
DASHBOARDS = sorted((GRAFANA_DIR / "dashboards").glob("*.json"))
PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
needs_prometheus = pytest.mark.skipif(
    not (PROMETHEUS and PROMTOOL),
    reason="Debian's prometheus package is not installed (apt-get install prometheus; .ci/run installs it)",
)
# Grafana's $__rate_interval is at least four scrape intervals; here scrapes are 2 s apart.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "5s", "$__range": "5m"}
PANEL_TYPES = {"timeseries", "stat", "table", "bargauge", "barchart", "gauge", "text"}
DATASOURCE_TYPES = {"prometheus", "grafana-postgresql-datasource"}


# ---------------------------------------------------------------------------------------------- the files
def datasources() -> dict[str, str]:
    spec = yaml.safe_load((GRAFANA_DIR / "provisioning" / "datasources" / "datasources.yml").read_text())
    return {d["uid"]: d["type"] for d in spec["datasources"]}


def panels():
    """(dashboard file, panel) for every panel of every provisioned dashboard."""
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            yield path.name, panel


def prometheus_expressions() -> list[tuple[str, str]]:
    """(where, PromQL with Grafana's variables expanded) of every Prometheus-datasource panel target."""
    out = []
    for name, panel in panels():
        for t in panel["targets"]:
            if (t.get("datasource") or panel["datasource"])["type"] == "prometheus":
                expr = t["expr"]
                for var, value in GRAFANA_VARIABLES.items():
                    expr = expr.replace(var, value)
                out.append((f"{name}: {panel['title']} [{t['refId']}]", expr))
    return out


def sql_targets() -> list[tuple[str, str]]:
    out = []
    for name, panel in panels():
        for t in panel["targets"]:
            if (t.get("datasource") or panel["datasource"])["type"] == "grafana-postgresql-datasource":
                out.append((f"{name}: {panel['title']} [{t['refId']}]", t["rawSql"]))
    return out


def alert_rules() -> list[dict]:
    spec = yaml.safe_load((PROM_DIR / "alerts.yml").read_text())
    return [r for g in spec["groups"] for r in g["rules"]]


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (titans_*, bentoml_*, up), its inner selectors."""
    names = set(re.findall(r"\b((?:titans|bentoml)_[a-z0-9_]+)\b", expr))
    if re.search(r"\bup\{", expr):
        names.add("up")
    return names


def expand_grafana_sql(sql: str, start: str = "2000-01-01", end: str = "2100-01-01") -> str:
    """Grafana's PostgreSQL macros the panels use, as Grafana expands them."""
    return re.sub(
        r"\$__timeFilter\(([^)]+)\)",
        lambda m: f"{m.group(1)} BETWEEN '{start}T00:00:00Z' AND '{end}T00:00:00Z'",
        sql,
    )


def test_the_dashboards_are_well_formed_grafana_json_with_known_datasources():
    uids = datasources()
    assert set(uids.values()) <= DATASOURCE_TYPES
    assert {p.stem for p in DASHBOARDS} == {"service", "models", "pipeline", "money"}
    seen_uids = set()
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        assert board["uid"] not in seen_uids and board["title"] and board["schemaVersion"] >= 36, path
        seen_uids.add(board["uid"])
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), path
        for panel in board["panels"]:
            where = f"{path.name}: {panel.get('title')}"
            assert panel["type"] in PANEL_TYPES and panel["title"], where
            g = panel["gridPos"]
            assert all(isinstance(g[k], int) for k in "xywh") and 0 <= g["x"] and g["x"] + g["w"] <= 24, where
            ds = panel["datasource"]
            assert uids.get(ds["uid"]) == ds["type"], f"{where}: unknown datasource {ds}"
            refs = [t["refId"] for t in panel["targets"]]
            assert refs and len(refs) == len(set(refs)), where
            for t in panel["targets"]:
                tds = t.get("datasource", ds)
                assert uids.get(tds["uid"]) == tds["type"], f"{where}: unknown datasource {tds}"
                if tds["type"] == "prometheus":
                    assert t["expr"].strip(), where
                else:
                    assert t["rawSql"].strip() and t["format"] in ("table", "time_series"), where
    # The money dashboard reads the marts through PostgreSQL; the others read Prometheus.
    assert {uids[ds["uid"]] for _, p in panels() for ds in [p["datasource"]]} == DATASOURCE_TYPES


def test_the_pipeline_and_service_rules_cover_the_issue():
    names = {r["alert"] for r in alert_rules()}
    assert {
        "TitansService5xxRate",
        "TitansServiceP99Latency",
        "TitansNoSuccessfulIngest",
        "TitansBlockingCheckFailing",
        "TitansChampionWorseThanBaseline",
        "TitansDriftWithoutRetrain",
    } <= names
    for rule in alert_rules():
        assert rule["annotations"]["summary"] and rule["labels"]["severity"] in ("page", "warn"), rule[
            "alert"
        ]


@needs_prometheus
def test_promtool_accepts_the_config_and_the_rules():
    for args in (
        ["check", "config", str(PROM_DIR / "prometheus.yml")],
        ["check", "rules", str(PROM_DIR / "alerts.yml")],
    ):
        proc = subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr


# ---------------------------------------------------------------------------------------------- pure rules
def test_pipeline_rules():
    import datetime as dt

    day = dt.date(2026, 6, 1)
    assert P.freshness_seconds(day, dt.date(2026, 6, 3), now=0) == 2 * 86400
    assert P.freshness_seconds(day, dt.date(2026, 5, 30), now=0) == 0  # never negative
    assert P.freshness_seconds(day, None, now=P.midnight_utc(day) + 3600) == 3600
    assert [
        P.check_outcome(s, sev)
        for s, sev in (
            ("SUCCEEDED", None),
            ("FAILED", "AssetCheckSeverity.ERROR"),
            ("FAILED", "AssetCheckSeverity.WARN"),
            ("PLANNED", None),
        )
    ] == ["passed", "failed", "warning", None]
    event = {
        "dagster_event": {
            "event_specific_data": {
                "materialization": {
                    "metadata": {
                        "retrain": {"__class__": "BoolMetadataValue", "value": True},
                        "new_rows": {"value": 12},
                    }
                }
            }
        }
    }
    assert P.find_metadata_value(event, "retrain") is True and P.find_metadata_value(event, "nope") is None
    samples = P.check_samples(
        [
            ('["raw", "transactions"]', "gx", "FAILED", "AssetCheckSeverity.ERROR"),
            ('["marts", "x"]', "t", "SUCCEEDED", None),
            ('["marts", "x"]', "p", "PLANNED", None),
        ]
    )
    status = {dict(s.labels)["check"]: dict(s.labels) for s in samples if s.name == "titans_check_status"}
    assert status["gx"] == {
        "asset": "raw/transactions",
        "check": "gx",
        "severity": "error",
        "status": "failed",
    }
    assert "p" not in status
    counts = {dict(s.labels)["status"]: s.value for s in samples if s.name == "titans_checks"}
    assert counts == {"passed": 1, "warning": 0, "failed": 1}
    summary = {
        "amount": {
            "champion": "3",
            "model_kind": "baseline:description_median",
            "primary_metric": "mae",
            "higher_is_better": False,
            "value": 10.0,
            "best_baseline": "description_median",
            "best_baseline_value": 10.0,
        },
        "category": {"champion": None},
    }
    got = {(s.name, dict(s.labels).get("model")): s.value for s in P.champion_samples(summary)}
    assert got == {
        ("titans_champion_version", "amount"): 3,
        ("titans_champion_metric", "amount"): 10.0,
        ("titans_champion_metric_higher_is_better", "amount"): 0,
        ("titans_champion_baseline_metric", "amount"): 10.0,
    }
    assert [
        model_of(r) for r in ("/predict/category/batch", "/predict/cashflow", "/models/{name}/reload")
    ] == ["category", "cashflow", ""]


# ---------------------------------------------------------------------------------------------- for real
@pytest.fixture(scope="module")
def store(embedded_db, tmp_path_factory):
    """As test_serving_http's `store` (a scratch database whose MLflow registry holds a champion of each
    model, the serving tests' models, trained once per test run), over a smaller warehouse (1200 rows
    loaded by the test): this test measures the plumbing, not the models."""
    import datetime as dt

    from conftest import scratch_database

    from titans_assets.lib.generator import generate
    from titans_assets.lib.ml import catalog
    from titans_assets.lib.ml.tracking import Registry
    from titans_assets.lib.settings import Settings

    root = tmp_path_factory.mktemp("prometheus")
    generate(root / "raw", rows=1200, seed=21, end_date=dt.date(2026, 6, 30))
    trained = serving_models(tmp_path_factory)
    with scratch_database(embedded_db) as db:
        env = {
            "TITANS_HOME": str(root / "home"),
            "TITANS_DATABASE_URL": db.url,
            "TITANS_LANDING_DIR": str(root / "raw"),
        }
        registry = Registry.from_settings(Settings.from_env(env), db)
        for spec in catalog.SPECS:
            _, version = registry.log_training(spec.name, trained[spec.key], spec.example_frame())
            registry.promote(spec.name, version, "prometheus test")
        yield {"db": db, "env": env, "trained": trained}


def _wait(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")


class Prom:
    def __init__(self, base: str):
        self.base = base

    def query(self, expr: str) -> dict:
        r = httpx.get(f"{self.base}/api/v1/query", params={"query": expr}, timeout=30)
        body = r.json()
        assert r.status_code == 200 and body["status"] == "success", f"{expr}: {r.status_code} {body}"
        return body["data"]

    def series(self, expr: str, patience: float = 0) -> list:
        """The series `expr` returns now; when none, asked again for up to `patience` seconds (a scrape
        that timed out on the loaded machine leaves its target's series stale until the next one)."""
        deadline = time.monotonic() + patience
        while True:
            data = self.query(expr)
            result = data["result"] if data["resultType"] in ("vector", "matrix") else [data["result"]]
            if result or time.monotonic() >= deadline:
                return result
            time.sleep(1)


def build_marts(env: dict[str, str], target: Path) -> None:
    """The models the money and pipeline panels read, and what they depend on (seeds included), built by
    `dbt build` without its tests on the test's warehouse (the tests are the pipeline's business)."""
    from titans_assets.lib.db import Database

    dbt = str(Path(sys.executable).with_name("dbt"))
    run_env = {**env, **Database(env["TITANS_DATABASE_URL"]).dbt_env()}
    proc = subprocess.run(
        [
            dbt,
            "build",
            "--project-dir",
            str(REPO / "dbt_project"),
            "--profiles-dir",
            str(REPO / "dbt_project"),
            "--target-path",
            str(target),
            "--exclude-resource-type",
            "test",
            "--select",
            "+fct_daily_metrics",
            "+fct_monthly_category",
            "+fct_transactions",
        ],
        env=run_env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]


@needs_prometheus
def test_a_real_prometheus_answers_every_panel_and_rule(store, tmp_path):
    env = {**child_env("TITANS_REDIS_URL", "BENTOML_CONFIG_OPTIONS"), **store["env"]}
    procs: list[tuple[subprocess.Popen, list]] = []
    try:
        # 1. The service (two workers, JSON logs) and the pipeline exporter, started first: they boot while
        # the pipeline runs (the exporter reports what exists at each scrape).
        serve_env = {
            **env,
            "TITANS_API_KEYS": KEY,
            "TITANS_LOG_FORMAT": "json",
            "TITANS_MODEL_POLL_SECONDS": "0",
            "TITANS_RATE_LIMIT_IP": "5/minute",
            "TITANS_RATE_LIMIT_KEY": "100000/hour",
            "TITANS_TRUSTED_PROXIES": "127.0.0.1",
        }
        server = Server(serve_env, workers=2, log=tmp_path / "serve.log")
        procs.append((server.proc, []))
        exporter_port = free_port()
        exporter = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("titans")),
                "metrics",
                "--port",
                str(exporter_port),
                "--cache-seconds",
                "3",
                "--registry-seconds",
                "10",
            ],
            env=env,
            stdout=(tmp_path / "metrics.log").open("w"),
            stderr=subprocess.STDOUT,
            process_group=0,
        )
        procs.append((exporter, []))

        # 2. Prometheus on the committed config and rules, targets and intervals rewritten for loopback.
        config = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
        # Scrapes every 2 s (a timed-out scrape marks every series of its target stale: on a loaded machine
        # 1 s is too short for the exporter's reads), rules evaluated every second.
        config["global"].update(scrape_interval="2s", scrape_timeout="2s", evaluation_interval="1s")
        config["rule_files"] = [str(PROM_DIR / f) for f in config["rule_files"]]
        targets = {
            "titans-service": f"127.0.0.1:{server.port}",
            "titans-pipeline": f"127.0.0.1:{exporter_port}",
        }
        assert {j["job_name"] for j in config["scrape_configs"]} == set(targets)
        for job in config["scrape_configs"]:
            job.update(
                scrape_interval="2s",
                scrape_timeout="2s",
                static_configs=[{"targets": [targets[job["job_name"]]]}],
            )
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        check = subprocess.run(
            [PROMTOOL, "check", "config", str(tmp_path / "prometheus.yml")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert check.returncode == 0, check.stdout + check.stderr
        prom_port = free_port()
        prometheus = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                "--log.level=warn",
            ],
            stdout=(tmp_path / "prometheus.log").open("w"),
            stderr=subprocess.STDOUT,
            process_group=0,
        )
        procs.append((prometheus, []))
        prom = Prom(f"http://127.0.0.1:{prom_port}")

        # 3. Meanwhile, the pipeline: a real Dagster run loads the generated exports and runs the raw checks;
        # dbt builds the marts the PostgreSQL panels read.
        run = subprocess.run(
            [str(Path(sys.executable).with_name("titans")), "materialize", "--select", "key:raw/*"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        build_marts(env, tmp_path / "dbt-target")

        server.wait_ready()
        procs[0] = (server.proc, server.tree)
        assert get_until_up(f"http://127.0.0.1:{exporter_port}/metrics", exporter, timeout=120), (
            tmp_path / "metrics.log"
        ).read_text()[-2000:]
        assert get_until_up(f"{prom.base}/-/ready", prometheus, timeout=60), (
            tmp_path / "prometheus.log"
        ).read_text()

        # 4. Traffic: every prediction route, a batch, the forecast, a reload, and each kind of error.
        with httpx.Client(base_url=server.base, headers=AUTH, timeout=60) as c:
            for _ in range(3):
                for key, body in REQUESTS.items():
                    assert c.post(f"/predict/{key}", json=body, headers=client_ip()).status_code == 200
                    assert (
                        c.post(
                            f"/predict/{key}/batch", json={"transactions": [body] * 5}, headers=client_ip()
                        ).status_code
                        == 200
                    )
                assert (
                    c.post("/predict/cashflow", json={"horizon_days": 30}, headers=client_ip()).status_code
                    == 200
                )
            assert c.post("/models/category/reload", headers=client_ip()).json()["outcome"] == "unchanged"
            assert (
                c.post(
                    "/predict/category", json={**REQUESTS["category"], "amount": "x"}, headers=client_ip()
                ).status_code
                == 422
            )
            assert (
                c.post(
                    "/predict/category",
                    json=REQUESTS["category"],
                    headers={**client_ip(), "Authorization": "Bearer wrong-key-0123456789"},
                ).status_code
                == 401
            )
            assert c.get("/no/such/route").status_code == 404
            ip = client_ip()
            statuses = [c.get("/models/status", headers=ip).status_code for _ in range(8)]  # 5/minute per IP
            assert 429 in statuses, statuses
        r = fresh("GET", f"{server.base}/health", headers={"X-Request-ID": "req-obs-1"})
        assert r.headers["x-request-id"] == "req-obs-1"

        # 5. Both targets scraped after the traffic, and the traffic visible.
        def scraped():
            ups = {s["metric"]["job"]: s["value"][1] for s in prom.series("up")}
            seen = prom.series('sum(titans_http_requests_total{route="/predict/cashflow"})')
            return (
                ups == {"titans-service": "1", "titans-pipeline": "1"}
                and seen
                and float(seen[0]["value"][1]) >= 3
            )

        _wait(scraped, 60, "Prometheus scraping the service and the exporter")
        time.sleep(3)  # a few more scrapes, so rate() has samples after the traffic

        # 6. Every panel expression: no error, at least one series.
        empty = [
            (where, expr) for where, expr in prometheus_expressions() if not prom.series(expr, patience=10)
        ]
        assert not empty, f"panel expressions with no series after traffic: {empty}"

        # 7. Every alert expression: no error; when empty (all is well), each metric it reads has series.
        for rule in alert_rules():
            if prom.series(rule["expr"]):
                continue
            for name in metric_names(rule["expr"]):
                assert prom.series(f'{{__name__="{name}"}}', patience=10), (
                    f"{rule['alert']}: no series of {name}"
                )
        groups = httpx.get(f"{prom.base}/api/v1/rules", timeout=30).json()["data"]["groups"]
        assert {g["name"] for g in groups} == {"titans-service", "titans-pipeline"}
        bad = [(r["name"], r.get("lastError")) for g in groups for r in g["rules"] if r["health"] != "ok"]
        assert not bad, bad

        # 8. The champions' metrics reached Prometheus as the registry holds them.
        metric = {
            s["metric"]["model"]: float(s["value"][1])
            for s in prom.series("titans_champion_metric", patience=10)
        }
        assert set(metric) == {"category", "amount", "anomaly", "cashflow"}
        for key, trained in store["trained"].items():
            assert metric[key] == pytest.approx(trained.metrics[primary_metric(key)])
        loaded = {
            s["metric"]["file"]: float(s["value"][1])
            for s in prom.series("titans_file_rows_loaded", patience=10)
        }
        assert loaded and all(v > 0 for v in loaded.values())
        workers = {
            s["metric"]["pid"]
            for s in prom.series('titans_worker_model_version{model="category"}', patience=10)
        }
        assert len(workers) == 2, workers

        # 9. Grafana's PostgreSQL panels, on this warehouse.
        from titans_assets.lib.db import Database

        with Database(env["TITANS_DATABASE_URL"]).connect() as conn, conn.cursor() as cur:
            for where, sql in sql_targets():
                cur.execute(expand_grafana_sql(sql))
                rows = cur.fetchall()
                if "quarantine" not in sql:  # the generated exports may have no bad row
                    assert rows, f"{where}: no rows"

        # 10. JSON logs: the workers' lines are JSON objects; the key and request bodies are never logged.
        text = server.log.read_text()
        assert KEY not in text and "Adobe Creative Cloud" not in text and "wrong-key-0123456789" not in text
        records = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        access = [r for r in records if r.get("component") == "titans.serving.access"]
        assert access and all(
            {"timestamp", "level", "request_id", "latency_seconds", "route", "status"} <= set(r)
            for r in access
        )
        assert any(
            r["route"] == "/predict/category" and r["model"] == "category" and r["model_version"] == "1"
            for r in access
        )
        assert any(r["request_id"] == "req-obs-1" for r in access)
        # Every line is JSON but what `titans serve` itself prints before BentoML starts (not log records).
        cli_echo = ("database: ", "serving bento.service", "dev API key", "  curl ")
        plain = [line for line in text.splitlines() if line and not line.startswith(("{", *cli_echo))]
        assert not plain, plain[:5]
    finally:
        leftovers = []
        for proc, tree in reversed(procs):
            leftovers += stop_group(proc, tree or None, grace=30)
        assert not leftovers, f"processes left behind: {leftovers}"


def primary_metric(key: str) -> str:
    from titans_assets.lib.ml.catalog import SPECS

    return next(s.primary_metric for s in SPECS if s.key == key)
