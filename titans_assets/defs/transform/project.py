"""The one DbtProject. Its manifest is prepared explicitly (`make prepare`, the `titans` CLI, the test
session fixture) because prepare_if_dev() only runs under `dagster dev`."""

import shutil
import sys
from pathlib import Path

from dagster_dbt import DbtProject

DBT_PROJECT_DIR = Path(__file__).resolve().parents[3] / "dbt_project"

# The dbt installed next to this interpreter (the venv's), even when the venv is not on PATH.
_venv_dbt = Path(sys.executable).with_name("dbt")
DBT_EXECUTABLE = str(_venv_dbt) if _venv_dbt.exists() else (shutil.which("dbt") or "dbt")

titans_dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
