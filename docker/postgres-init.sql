-- Runs once, when the postgres volume is first initialised (/docker-entrypoint-initdb.d).
-- POSTGRES_DB (titans) holds the warehouse and Dagster's storage; MLflow's tracking and registry store
-- gets a database of its own, as on the laptop (`<database>_mlflow`, titans_assets/lib/ml/tracking.py),
-- because MLflow and Dagster each keep an alembic_version table.
CREATE DATABASE titans_mlflow;
