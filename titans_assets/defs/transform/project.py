"""The one DbtProject. Its manifest is prepared explicitly (`make prepare`, the `titans` CLI, the test
session fixture) because prepare_if_dev() only runs under `dagster dev`."""

from dagster_dbt import DbtProject

from titans_assets.lib.paths import PROJECT_ROOT, executable

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
DBT_EXECUTABLE = executable("dbt")

titans_dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
