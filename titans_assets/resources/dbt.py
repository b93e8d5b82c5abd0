"""The dbt CLI resource on the configured warehouse (its connection is this resource's, not the process's)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from dagster_dbt import DbtCliInvocation, DbtCliResource

from titans_assets.defs.transform.project import DBT_EXECUTABLE, titans_dbt_project
from titans_assets.resources import WarehouseResource

# dagster-dbt 0.29 builds the dbt process's environment from os.environ inside `cli()`, with no hook to
# add to it (its maintainers point to a scoped environment instead: dagster-io/dagster#29656). The lock
# keeps two calls in one process from seeing each other's values.
_ENV_LOCK = threading.Lock()


@contextmanager
def _scoped_environ(values: Mapping[str, str]) -> Iterator[None]:
    """`values` in os.environ inside the block only; what was there before comes back after."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class TitansDbtResource(DbtCliResource):
    """The project's dbt (the venv's executable) on `warehouse`: each `cli()` call hands the dbt process
    that warehouse's connection (Database.dbt_env(), read by dbt_project/profiles.yml), looked up when
    the call is made, so the same definitions serve the laptop default and a team's server."""

    warehouse: WarehouseResource

    def __init__(self, warehouse: WarehouseResource | None = None, **kwargs):
        kwargs.setdefault("project_dir", titans_dbt_project)
        kwargs.setdefault("dbt_executable", DBT_EXECUTABLE)
        super().__init__(warehouse=warehouse or WarehouseResource(), **kwargs)

    def cli(self, args: Sequence[str], env: Mapping[str, str] | None = None, **kwargs) -> DbtCliInvocation:
        """dbt `args` on the warehouse, with `env` added to the dbt process's environment."""
        # The dbt process starts inside super().cli(); the environment is restored once it has.
        with _ENV_LOCK, _scoped_environ({**self.warehouse.database().dbt_env(), **(env or {})}):
            return super().cli(args, **kwargs)

    def parse(self, target_path: Path) -> None:
        """`dbt parse`, what the project's preparer does: it needs no connection, so the warehouse is not
        looked up (the embedded server may not be running, or not be wanted)."""
        super().cli(["--quiet", "parse"], target_path=target_path).wait()
