"""`bentoml build` of the service works (a few seconds, no network) and its pins match the lock."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BENTOFILE = ROOT / "bento" / "bentofile.yaml"


def test_bentofile_pins_are_the_installed_versions():
    config = yaml.safe_load(BENTOFILE.read_text())
    assert config["service"] == "bento.service:TitansService"
    for pin in config["python"]["packages"]:
        name, version = pin.split("==")
        assert metadata.version(name) == version, (
            f"{pin}: installed {metadata.version(name)} (update bentofile.yaml)"
        )


def test_bentoml_build_packs_the_service_and_the_shared_code(tmp_path):
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml"), "BENTOML_DO_NOT_TRACK": "True"}
    bentoml = str(Path(sys.executable).with_name("bentoml"))
    done = subprocess.run(
        [bentoml, "build", "-f", str(BENTOFILE), str(ROOT)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (bento,) = [
        p for p in (tmp_path / "bentoml" / "bentos" / "titans").iterdir() if (p / "bento.yaml").is_file()
    ]
    src = bento / "src"
    for rel in (
        "bento/service.py",
        "titans_assets/lib/serving/app.py",
        "titans_assets/lib/ml/features.py",
        "dbt_project/seeds/payment_method_aliases.csv",
    ):
        assert (src / rel).is_file(), rel
    assert not (src / "tests").exists() and not list(src.rglob("__pycache__"))
    manifest = yaml.safe_load((bento / "bento.yaml").read_text())
    assert manifest["entry_service"] == "titans" and manifest["service"] == "bento.service:TitansService"
    requirements = (bento / "env" / "python" / "requirements.txt").read_text()
    assert "mlflow==" in requirements and "limits==" in requirements
