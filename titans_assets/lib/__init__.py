"""Plain-Python building blocks (no Dagster imports): importable from the CLI, dbt hooks, tests and serving."""
