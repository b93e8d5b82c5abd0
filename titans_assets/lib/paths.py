"""Where the project and this environment's executables are (one definition for every module)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the checkout: dbt_project/, dagster.yaml, bento/


def executable(name: str) -> str:
    """The `name` installed next to this interpreter (the venv's, even when the venv is not on PATH),
    else the one on PATH, else the bare name (the error then names it)."""
    exe = Path(sys.executable).with_name(name)
    return str(exe) if exe.exists() else (shutil.which(name) or name)
