"""What the Streamlit dashboard (titans_assets/dashboard/) shows, as plain functions.

Modules: `periods`, `formatting`, `queries` (SQL aggregated in PostgreSQL), `service` (a client that
turns every failure into an explicit state), `anomalies`, `feedback`, `uploads`. No Streamlit and
no Dagster imports here: everything is unit-tested without a browser.

Design notes (what each module does): docs/design-notes.md#titans_assetslibdashboard__init__py
"""
