"""Cash flow: the champion's forecast with its interval beside the recent actual daily net flow (as the
predictions/cashflow_forecast asset stored it; before that asset has run, from the service), and the
champion's backtest error (from the registry)."""

import datetime as dt

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from titans_assets.dashboard.common import cached, champions, client, database, require_data, show_outcome
from titans_assets.lib.dashboard import formatting as fmt
from titans_assets.lib.dashboard import predictions as P
from titans_assets.lib.dashboard import queries as Q
from titans_assets.lib.dashboard.periods import Period
from titans_assets.lib.dashboard.views import backtest_rows, forecast_frame

HORIZON = 30

st.title("Cash flow")
db = database()
bounds = require_data(db)
history_days = st.sidebar.slider("Actual days shown", 30, 365, 90, step=15, key="cf_days")
actual = cached(
    Q.daily_flow,
    db,
    Period(max(bounds.first, bounds.last - dt.timedelta(days=history_days - 1)), bounds.last),
)

stored = P.forecast(db)
out = client().cashflow(HORIZON) if stored is None else None
fc = stored if stored is not None else (forecast_frame(out.body) if out.ok else None)
fig = go.Figure(
    go.Bar(x=actual["metric_date"], y=actual["net"], name="actual daily net", marker_color="#7f9cc1")
)
if fc is not None:
    x = pd.concat([fc["date"], fc["date"][::-1]])
    fig.add_trace(
        go.Scatter(
            x=x,
            y=pd.concat([fc["upper"], fc["lower"][::-1]]),
            fill="toself",
            name="interval",
            line=dict(width=0),
            fillcolor="rgba(209,73,91,0.2)",
            hoverinfo="skip",
        )
    )
    fig.add_trace(
        go.Scatter(x=fc["date"], y=fc["predicted_amount"], name="forecast", line=dict(color="#d1495b"))
    )
fig.update_layout(height=420, margin=dict(l=0, r=0, t=10, b=0), yaxis_title="net flow per day")
st.plotly_chart(fig, width="stretch")

actual_net = fmt.money(float(actual["net"].tail(HORIZON).sum()) if len(actual) else None)
if stored is not None:
    days = len(stored)
    first = stored["date"].iloc[0].date()
    c1, c2, c3, c4 = st.columns(4)
    c1.metric(f"Forecast net, next {days} days", fmt.money(round(float(stored["predicted_amount"].sum()), 2)))
    c2.metric("Forecast from", first.isoformat())
    c3.metric(f"Actual net, last {HORIZON} days", actual_net)
    c4.metric("Model version", str(stored["model_version"].iloc[0]))
    st.caption(
        f"Stored by the predictions/cashflow_forecast asset at {stored['scored_at'].iloc[0]:%Y-%m-%d %H:%M}"
        f" from the champion trained on data up to {first - dt.timedelta(days=1)}."
        + (
            f" The data now runs to {bounds.last}: `titans materialize` retrains on it."
            if first <= bounds.last
            else ""
        )
    )
elif out.ok:
    summary = out.body["summary"]
    c1, c2, c3, c4 = st.columns(4)
    c1.metric(f"Forecast net, next {HORIZON} days", fmt.money(summary.get("total_predicted")))
    c2.metric("Trend", str(summary.get("trend")))
    c3.metric(f"Actual net, last {HORIZON} days", actual_net)
    c4.metric("Model version", f"{out.body.get('model_version')} ({out.body.get('model_kind')})")
    as_of = summary.get("as_of")
    st.caption(
        f"Forecast from the day after {as_of}, the last day the champion was trained on (asked of the "
        "service: predictions/cashflow_forecast has not run since a champion was promoted)."
        + (
            f" The data now runs to {bounds.last}: `titans materialize` retrains on it."
            if as_of and as_of < bounds.last.isoformat()
            else ""
        )
    )
else:
    show_outcome(out, "cash-flow forecast")

st.subheader("Backtest error of the current champion")
models = champions()
if models is None:
    st.stop()
entry = models.get("cashflow") or {}
if entry.get("champion") is None:
    st.warning(
        "No cash-flow champion in the registry: "
        + (entry.get("error") or "train one with `titans materialize`.")
    )
else:
    st.dataframe(pd.DataFrame(backtest_rows(entry)), hide_index=True)
    st.caption(
        f"titans_cashflow v{entry['champion']}: rolling-origin backtest over the training data "
        f"(MASE < 1 beats a seasonal naive forecast of the same days)."
    )
