"""Data health: what `titans status` reports (last ingest per file, check results, champions and their
metrics, table counts) and the quarantined rows with their reasons."""

import pandas as pd
import streamlit as st

from titans_assets.dashboard.common import TTL, cached, database, one_line
from titans_assets.lib.dashboard import formatting as fmt
from titans_assets.lib.dashboard import queries as Q
from titans_assets.lib.dashboard.views import champion_rows, check_rows, metric_table


@st.cache_data(ttl=TTL, show_spinner=False)
def status_report(url: str) -> dict:  # url: the cache key (collect_status reads the same environment)
    from titans_assets.status_report import collect_status

    return collect_status()


st.title("Data health")
db = database()
try:
    with st.spinner("Reading the status (files, checks, registry) ..."):
        report = status_report(db.url)
except Exception as exc:  # noqa: BLE001 - one line with its code, never a traceback
    st.error(one_line(exc, "E001"))
    st.stop()

st.caption(
    f"Database {report['database']}; landing folder {report['landing_dir']}; as of {report['generated_at']}"
)

st.subheader("Last ingest per file")
files = pd.DataFrame(
    report["files"], columns=["source_file", "rows_read", "rows_loaded", "rows_quarantined", "loaded_at"]
)
if files.empty:
    st.info("No file loaded yet — drop CSVs into data/raw or run `titans demo`.")
else:
    st.dataframe(files, hide_index=True, width="stretch")

st.subheader("Quarantined rows")
total, quarantined = cached(Q.quarantine, db)
if total == 0:
    st.success("No row in quarantine.")
else:
    shown = f"the latest {len(quarantined):,}" if total > len(quarantined) else "all of them"
    st.write(f"{fmt.count(total)} row(s) in quarantine; {shown} with the reason:")
    st.dataframe(quarantined, hide_index=True, width="stretch")

st.subheader("Latest check results")
checks = check_rows(report["checks"])
if checks.empty:
    st.info("No checks defined.")
else:
    counts = checks["status"].value_counts()
    states = ("passed", "failed", "warning", "running", "not run")
    for col, state in zip(st.columns(len(states)), states):
        col.metric(state, fmt.count(int(counts.get(state, 0))))
    st.dataframe(checks, hide_index=True, width="stretch", height=280)

st.subheader("Champion models")
st.dataframe(pd.DataFrame(champion_rows(report["models"])), hide_index=True, width="stretch")
metrics = metric_table(report["models"])
if not metrics.empty:
    with st.expander("Every logged metric of the champions"):
        st.dataframe(metrics, hide_index=True, width="stretch")

with st.expander("Row counts and last materializations"):
    st.dataframe(
        pd.DataFrame([{"table": t, "rows": n} for t, n in report["tables"].items()]), hide_index=True
    )
    st.dataframe(
        pd.DataFrame([{"asset": k, "last materialized": v} for k, v in report["materializations"].items()]),
        hide_index=True,
    )
