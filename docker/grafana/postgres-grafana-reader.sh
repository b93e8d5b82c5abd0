#!/bin/sh
# A read-only role for Grafana's PostgreSQL datasource (run once, by the postgres image's first start,
# from /docker-entrypoint-initdb.d). pg_read_all_data (PostgreSQL 14+) reads every table, including the
# marts dbt creates later, and writes nothing.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v reader="${GRAFANA_DB_USER:-grafana_reader}" -v password="${GRAFANA_DB_PASSWORD:?set GRAFANA_DB_PASSWORD}" <<'SQL'
CREATE ROLE :"reader" LOGIN PASSWORD :'password';
GRANT pg_read_all_data TO :"reader";
SQL
