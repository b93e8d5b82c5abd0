"""Anomalies: a period's transactions with the champion anomaly model's scores as the prediction asset
stored them (predictions.transaction_anomalies; before that asset has run, scored through the service's
batch endpoint instead), flags ranked by score with their reasons, the score distribution, and
"expected" marks kept in app.anomaly_feedback (the next training uses them)."""

import plotly.express as px
import streamlit as st

from titans_assets.dashboard.common import (
    TTL,
    cached,
    client,
    database,
    period_picker,
    require_data,
    show_outcome,
)
from titans_assets.lib.dashboard import anomalies as A
from titans_assets.lib.dashboard import feedback
from titans_assets.lib.dashboard import formatting as fmt
from titans_assets.lib.dashboard import predictions as P
from titans_assets.lib.dashboard import queries as Q
from titans_assets.lib.dashboard.service import Outcome, ServiceClient
from titans_assets.lib.db import Database
from titans_assets.lib.settings import Settings


class ServiceFailed(Exception):
    """Raised inside the cached scorer so a failure is not cached (the next rerun asks again)."""

    def __init__(self, outcome: Outcome):
        super().__init__(outcome.line())
        self.outcome = outcome


@st.cache_data(ttl=TTL * 5, show_spinner=False)
def score_period(url: str, base_url: str, api_key: str | None, period, limit: int):
    frame = Q.transactions_to_score(Database(url), period, limit)
    if frame.empty:
        return frame, [], []
    out = ServiceClient(base_url, api_key).predict_batches("anomaly", A.requests_in_batches(frame))
    if not out.ok:
        raise ServiceFailed(out)
    return frame, out.body["predictions"], out.body["model_versions"]


@st.cache_data(ttl=TTL, show_spinner=False)
def stored_period(url: str, period, limit: int):
    return P.anomalies(Database(url), period, limit)


st.title("Anomalies")
db = database()
bounds = require_data(db)
period = period_picker(bounds, "anomalies", default="Last 90 days")
service = client()

total = cached(Q.period_count, db, period)
stored = stored_period(db.url, period, P.MAX_ROWS)
if stored is not None:
    frame, predictions, versions = stored
    source = "stored by the predictions/transaction_anomalies asset"
else:
    try:
        with st.spinner("Scoring the period's transactions with the champion anomaly model ..."):
            frame, predictions, versions = score_period(
                db.url, service.base_url, service.api_key, period, A.MAX_SCORED
            )
    except ServiceFailed as failed:
        show_outcome(failed.outcome, "anomaly model")
        st.stop()
    source = (
        "the service's champion: predictions/transaction_anomalies has not run since a champion was "
        "promoted (`titans materialize` writes it)"
    )
if frame.empty:
    st.info("No transactions in this period.")
    st.stop()

marks = feedback.expected(db, list(frame["transaction_id"]))
ranked = A.scored(frame, predictions, marks)
c1, c2, c3 = st.columns(3)
include_medium = c1.toggle("Include medium risk", value=False, key="an_medium")
hide_expected = c2.toggle("Hide flags marked expected", value=False, key="an_hide")
shown = A.flagged(ranked, include_medium=include_medium, hide_expected=hide_expected)
n_flags = int(ranked["is_anomaly"].sum())
c3.metric("Flagged", fmt.count(n_flags), f"of {len(ranked):,} scored", delta_color="off")
if total <= len(frame):
    note = f"Scored all {total:,} transactions in {period.label()}."
elif stored is not None and len(frame) < P.MAX_ROWS:
    note = (
        f"Scored {len(frame):,} of the {total:,} transactions in {period.label()} (moves between your own "
        "accounts are not scored)."
    )
else:
    note = (
        f"Scored the most recent {len(frame):,} of {total:,} transactions in {period.label()}; narrow the "
        "period to see the rest."
    )
st.caption(
    f"{note} Anomaly model version {', '.join(map(str, versions))} ({source}). Flags marked expected "
    "count as normal at the next training; a merchant marked expected "
    f"{Settings.from_env().anomaly_expected_after} times for one reason is no longer flagged for it."
)

st.subheader("Flags, highest score first")
if shown.empty:
    st.success("Nothing flagged in this period.")
else:
    view = shown[
        [
            "txn_date",
            "account",
            "description",
            "amount",
            "category",
            "anomaly_score",
            "risk_level",
            "reasons",
            "expected",
            "marked_at",
        ]
    ]
    st.dataframe(
        view,
        hide_index=True,
        width="stretch",
        column_config={
            "amount": st.column_config.NumberColumn(format="%.2f"),
            "anomaly_score": st.column_config.ProgressColumn(min_value=0, max_value=1, format="%.3f"),
            "expected": st.column_config.CheckboxColumn("expected"),
        },
    )
    labels = {A.flag_label(r): r["transaction_id"] for r in shown.to_dict("records")}
    unmarked = [k for k, t in labels.items() if t not in marks]
    marked = [k for k, t in labels.items() if t in marks]
    m1, m2 = st.columns(2)
    with m1:
        pick = st.multiselect("Mark as expected", unmarked, key="an_mark")
        if st.button("Mark expected", key="an_mark_btn", disabled=not pick):
            scores = dict(zip(ranked["transaction_id"], ranked["anomaly_score"]))
            feedback.mark_expected(
                db,
                [labels[k] for k in pick],
                {labels[k]: scores[labels[k]] for k in pick},
                model_version=", ".join(map(str, versions)),
            )
            st.rerun()
    with m2:
        pick = st.multiselect("Unmark", marked, key="an_unmark")
        if st.button("Unmark", key="an_unmark_btn", disabled=not pick):
            feedback.unmark(db, [labels[k] for k in pick])
            st.rerun()

st.subheader("Score distribution")
fig = px.histogram(
    ranked,
    x="anomaly_score",
    color="risk_level",
    nbins=50,
    log_y=True,
    category_orders={"risk_level": ["low", "medium", "high"]},
    color_discrete_map={"low": "#7f9cc1", "medium": "#f0a202", "high": "#d1495b"},
)
fig.update_layout(height=320, margin=dict(l=0, r=0, t=10, b=0), xaxis_title="anomaly score")
st.plotly_chart(fig, width="stretch")
