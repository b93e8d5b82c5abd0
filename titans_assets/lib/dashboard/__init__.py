"""What the Streamlit dashboard (titans_assets/dashboard/) shows, as plain functions.

- `periods`: reporting periods and the period each one is compared with.
- `formatting`: numbers and deltas as the pages print them.
- `queries`: parameterized SQL against the dbt marts (aggregated in PostgreSQL, so a page over a
  million transactions moves a few hundred rows, not a million).
- `service`: a small HTTP client for the prediction service that turns every failure (connection
  refused, 401, 503/E002, 429, 4xx) into an explicit state; it never makes up a number.
- `anomalies`: batching a period's transactions for the service and ranking what it flags.
- `feedback`: the `app.anomaly_feedback` table where a user marks a flag as expected.
- `uploads`: reading a CSV of uncategorised transactions for batch category predictions.

No Streamlit and no Dagster imports here: everything is unit-tested without a browser.
"""
