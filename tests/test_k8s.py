"""docker/k8s/ held to the code and to docker-compose.yml, since no cluster runs here (never applied).

Every manifest parses and names its kind; Deployments select their own pods; Services select a
Deployment and target a port its container declares; the service runs replicas with readiness on
BentoML's /readyz; every container runs the compose image with a command that resolves to a real CLI
command and options (tests/test_compose.parse_command), listening on the port it declares; every
ConfigMap/Secret reference resolves to a manifest and key; every variable set is one the code reads;
URLs name the Services that exist; Postgres and Redis are ExternalName services; the Dagster chart's
values load the project's definitions from the same image, with the external database.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from test_compose import IMAGE, argv_of, load_compose, option, parse_command, project_text

K8S = Path(__file__).resolve().parents[1] / "docker" / "k8s"
KINDS = {"Deployment", "Service", "ConfigMap", "Secret", "PersistentVolumeClaim", "PodDisruptionBudget"}


def manifests() -> list[dict]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "dagster-values.yaml":
            continue
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def by_kind(kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in manifests() if d["kind"] == kind}


def values() -> dict:
    return yaml.safe_load((K8S / "dagster-values.yaml").read_text())


def read_by_code(var: str, code: str) -> bool:
    import mlflow.environment_variables as mlflow_env

    return re.search(rf"[\"'\s]{var}[\"')\s]", code) is not None or hasattr(mlflow_env, var)


def test_every_manifest_is_a_known_kind_with_a_unique_name():
    seen = set()
    for d in manifests():
        assert d["apiVersion"] and d["kind"] in KINDS, d
        key = (d["kind"], d["metadata"]["name"])
        assert key not in seen, key
        seen.add(key)


def test_deployments_services_and_ports_agree():
    deployments, services = by_kind("Deployment"), by_kind("Service")
    for name, dep in deployments.items():
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items(), name
        for c in dep["spec"]["template"]["spec"]["containers"]:
            assert c["image"] == IMAGE, name  # the image docker-compose.yml builds
            argv = [str(a) for a in c["command"]]
            if not any(a.startswith("$(") for a in argv):
                parse_command(argv)  # a real command with options it accepts
            ports = {p["name"]: p["containerPort"] for p in c["ports"]}
            assert str(option(argv, "--port")) == str(ports["http"]), name
            assert option(argv, "--host") == "0.0.0.0", name
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                if probe in c:
                    assert c[probe]["httpGet"]["port"] in ports, (name, probe)
    for name, svc in services.items():
        if svc["spec"].get("type") == "ExternalName":
            continue
        targets = [
            d
            for d in deployments.values()
            if svc["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(targets) == 1, f"Service {name} selects {len(targets)} deployments"
        ports = {p["name"] for c in targets[0]["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
        assert all(p["targetPort"] in ports for p in svc["spec"]["ports"]), name
    for pdb in by_kind("PodDisruptionBudget").values():
        dep = deployments[pdb["metadata"]["name"]]
        assert pdb["spec"]["selector"] == dep["spec"]["selector"]
        assert pdb["spec"]["minAvailable"] < dep["spec"]["replicas"]


def test_the_service_runs_replicas_ready_on_readyz_like_compose():
    dep = by_kind("Deployment")["titans-service"]
    assert dep["spec"]["replicas"] >= 2
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    path, ctx = parse_command(c["command"])
    assert " ".join(path) == "titans serve"
    compose_path, compose_ctx = parse_command(argv_of(load_compose()["services"]["bento"]))
    assert ctx.params["port"] == compose_ctx.params["port"] and ctx.params["workers"] >= 1
    env = {e["name"] for e in c["env"]}
    assert {"TITANS_DATABASE_URL", "TITANS_API_KEYS"} <= env  # from the Secret, never in the ConfigMap
    assert not {"TITANS_DATABASE_URL", "TITANS_API_KEYS"} & set(by_kind("ConfigMap")["titans-config"]["data"])


def test_config_and_secret_references_resolve_and_the_code_reads_every_variable():
    code = project_text()
    configmaps, secrets = by_kind("ConfigMap"), by_kind("Secret")
    for name, dep in by_kind("Deployment").items():
        for c in dep["spec"]["template"]["spec"]["containers"]:
            for src in c.get("envFrom", []):
                assert src["configMapRef"]["name"] in configmaps, name
            for e in c.get("env", []):
                assert read_by_code(e["name"], code) or e["name"] == "MLFLOW_BACKEND_STORE_URI", (
                    name,
                    e["name"],
                )
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets[ref["name"]]["stringData"], (name, ref)
        for v in dep["spec"]["template"]["spec"].get("volumes", []):
            assert v["persistentVolumeClaim"]["claimName"] in by_kind("PersistentVolumeClaim"), name
    for var in configmaps["titans-config"]["data"]:
        assert read_by_code(var, code), f"nothing reads {var}"
    # The same settings as compose's, where they are not addresses.
    compose_env = load_compose()["services"]["bento"]["environment"]
    for var in ("TITANS_HOME", "DAGSTER_HOME", "TITANS_LANDING_DIR", "TITANS_MLFLOW_ARTIFACTS"):
        assert configmaps["titans-config"]["data"][var] == compose_env[var], var


def test_urls_name_the_services_that_exist():
    services = by_kind("Service")
    data = by_kind("ConfigMap")["titans-config"]["data"]
    secret = by_kind("Secret")["titans-secrets"]["stringData"]
    for url in (
        data["TITANS_MLFLOW_TRACKING_URI"],
        data["TITANS_REDIS_URL"],
        secret["TITANS_DATABASE_URL"],
        secret["TITANS_DAGSTER_PG_URL"],
        secret["MLFLOW_BACKEND_STORE_URI"],
    ):
        parts = urlsplit(url)
        assert parts.hostname in services, url
        assert parts.port in {p["port"] for p in services[parts.hostname]["spec"]["ports"]}, url
    for name in ("titans-postgres", "titans-redis"):
        assert services[name]["spec"]["type"] == "ExternalName" and services[name]["spec"]["externalName"]
    from titans_assets.lib.db import Database

    db = Database(secret["TITANS_DATABASE_URL"])
    assert secret["TITANS_DAGSTER_PG_URL"] == db.sqlalchemy_url()  # what `titans dagster` would derive
    assert urlsplit(secret["MLFLOW_BACKEND_STORE_URI"]).path == f"/{db.dbname}_mlflow"


def test_dagster_chart_values_run_the_project_from_the_same_image_on_the_external_database():
    v = values()
    services, secrets = by_kind("Service"), by_kind("Secret")
    assert v["postgresql"]["enabled"] is False and v["generatePostgresqlPasswordSecret"] is False
    assert v["postgresql"]["postgresqlHost"] in services
    assert "postgresql-password" in secrets[v["global"]["postgresqlSecretName"]]["stringData"]
    db_url = urlsplit(secrets["titans-secrets"]["stringData"]["TITANS_DATABASE_URL"])
    assert (v["postgresql"]["postgresqlUsername"], v["postgresql"]["postgresqlDatabase"]) == (
        db_url.username,
        db_url.path.lstrip("/"),
    )
    (code,) = v["dagster-user-deployments"]["deployments"]
    assert f"{code['image']['repository']}:{code['image']['tag']}" == IMAGE
    args = code["dagsterApiGrpcArgs"]
    module = args[args.index("--module-name") + 1]
    compose_code = argv_of(load_compose()["services"]["dagster-user-code"])
    assert module == option(compose_code, "--module-name")
    importlib.import_module(module)  # what the code server loads
    for ref in code["envConfigMaps"] + v["runLauncher"]["config"]["k8sRunLauncher"]["envConfigMaps"]:
        assert ref["name"] in by_kind("ConfigMap")
    for ref in code["envSecrets"] + v["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"]:
        assert ref["name"] in secrets
    landing = by_kind("ConfigMap")["titans-config"]["data"]["TITANS_LANDING_DIR"]
    for spec in (code, v["runLauncher"]["config"]["k8sRunLauncher"]):
        assert [m["mountPath"] for m in spec["volumeMounts"]] == [landing]
        assert spec["volumes"][0]["persistentVolumeClaim"]["claimName"] in by_kind("PersistentVolumeClaim")
    assert by_kind("PersistentVolumeClaim")["titans-landing"]["spec"]["accessModes"] == ["ReadWriteMany"]
