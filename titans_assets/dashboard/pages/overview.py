"""Overview: income, expenses, net and balance of a period against the previous one; spending by
category; the cumulative balance; the latest transactions."""

import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from titans_assets.dashboard.common import cached, comparison, database, period_picker, require_data
from titans_assets.lib.dashboard import formatting as fmt
from titans_assets.lib.dashboard import queries as Q
from titans_assets.lib.dashboard.periods import compare

st.title("Overview")
db = database()
bounds = require_data(db)
period = period_picker(bounds, "overview")
previous = comparison(period, bounds)

current = cached(Q.period_totals, db, period)
before = cached(Q.period_totals, db, previous) if previous else None
changes = compare(current.as_dict(), before.as_dict() if before else None)
st.caption(f"{period.label()}" + (f", compared with {previous.label()}" if previous else
                                  " (no earlier data to compare with)"))

cols = st.columns(4)
for col, (key, label, higher_is_better) in zip(cols, [
    ("income", "Income", True), ("expenses", "Expenses", False), ("net", "Net", True),
    ("balance", "Balance at period end", True),
]):
    ch = changes[key]
    col.metric(label, fmt.money(ch.current), fmt.metric_delta(ch), delta_color=fmt.delta_color(higher_is_better))
st.caption(f"{fmt.count(current.transactions)} transactions in the period. Balance = cumulative net flow since "
           f"the first transaction ({bounds.first}); exports carry no opening balance.")

left, right = st.columns(2)
with left:
    st.subheader("Spending by category")
    spend = cached(Q.spending_by_category, db, period)
    if spend.empty:
        st.info("No expenses in this period.")
    else:
        fig = px.bar(spend.head(15).iloc[::-1], x="spent", y="category", orientation="h",
                     hover_data=["transactions"], labels={"spent": "spent", "category": ""})
        fig.update_layout(height=420, margin=dict(l=0, r=0, t=10, b=0))
        st.plotly_chart(fig, width="stretch")
with right:
    st.subheader("Cumulative balance")
    series = cached(Q.balance_series, db)
    fig = go.Figure(go.Scatter(x=series["metric_date"], y=series["running_balance"], mode="lines",
                               name="balance"))
    fig.add_vrect(x0=period.start, x1=period.end, fillcolor="LightSkyBlue", opacity=0.25, line_width=0)
    fig.update_layout(height=420, margin=dict(l=0, r=0, t=10, b=0), yaxis_title="balance")
    st.plotly_chart(fig, width="stretch")

st.subheader("Most recent transactions of the period")
recent = cached(Q.recent_transactions, db, period, 10)
st.dataframe(recent, hide_index=True, width="stretch",
             column_config={"amount": st.column_config.NumberColumn(format="%.2f")})
