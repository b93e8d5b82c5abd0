"""Overview: income, expenses and net of a period (in the reporting currency, transfers between the
user's own accounts left out) and the household's balance (the accounts' balances, fct_daily_balances),
each against the previous period; spending by category; the balance over time; the latest transactions."""

import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from titans_assets.dashboard.common import cached, comparison, database, period_picker, require_data
from titans_assets.lib.dashboard import formatting as fmt
from titans_assets.lib.dashboard import queries as Q
from titans_assets.lib.dashboard import views
from titans_assets.lib.dashboard.periods import Change, compare

st.title("Overview")
db = database()
bounds = require_data(db)
period = period_picker(bounds, "overview")
previous = comparison(period, bounds)

reporting = cached(Q.reporting_currency, db)
currencies = cached(Q.balance_currencies, db) or [reporting]
currency = (
    st.sidebar.selectbox("Balance currency", currencies, key="overview_currency")
    if len(currencies) > 1
    else currencies[0]
)
current = cached(Q.period_totals, db, period)
before = cached(Q.period_totals, db, previous) if previous else None
balance_now = cached(Q.household_balance, db, period.end, currency)
balance_then = cached(Q.household_balance, db, previous.end, currency) if previous else None
changes = compare(current.as_dict(), before.as_dict() if before else None)
changes["balance"] = Change(float("nan") if balance_now is None else balance_now, balance_then)
st.caption(
    f"{period.label()}"
    + (f", compared with {previous.label()}" if previous else " (no earlier data to compare with)")
)

cols = st.columns(4)
for col, (key, label, higher_is_better) in zip(
    cols,
    [
        ("income", "Income", True),
        ("expenses", "Expenses", False),
        ("net", "Net", True),
        ("balance", f"Balance at period end ({currency})", True),
    ],
):
    ch = changes[key]
    col.metric(
        label, fmt.money(ch.current), fmt.metric_delta(ch), delta_color=fmt.delta_color(higher_is_better)
    )
pairs, unpaired = cached(Q.transfer_counts, db, period)
st.caption(
    f"{fmt.count(current.transactions)} transactions in the period; income, expenses and net in {reporting}. "
    f"{fmt.count(pairs)} transfers between your accounts are left out (moved, not spent or earned; "
    "see Balances). The balance is your accounts' in "
    + currency
    + (", never added across currencies." if len(currencies) > 1 else ".")
)
for note in views.balance_notes(cached(Q.account_balances, db, period.end, currency), currency, reporting):
    st.caption(note)

left, right = st.columns(2)
with left:
    st.subheader("Spending by category")
    spend = cached(Q.spending_by_category, db, period)
    if spend.empty:
        st.info("No expenses in this period.")
    else:
        fig = px.bar(
            spend.head(15).iloc[::-1],
            x="spent",
            y="category",
            orientation="h",
            hover_data=["transactions"],
            labels={"spent": "spent", "category": ""},
        )
        fig.update_layout(height=420, margin=dict(l=0, r=0, t=10, b=0))
        st.plotly_chart(fig, width="stretch")
with right:
    st.subheader(f"Balance ({currency})")
    series = cached(Q.balance_history, db, currency, bounds.first, bounds.last)
    series = series[series["account"] == "(total)"]
    fig = go.Figure(go.Scatter(x=series["balance_date"], y=series["balance"], mode="lines", name="balance"))
    fig.add_vrect(x0=period.start, x1=period.end, fillcolor="LightSkyBlue", opacity=0.25, line_width=0)
    fig.update_layout(height=420, margin=dict(l=0, r=0, t=10, b=0), yaxis_title=f"balance ({currency})")
    st.plotly_chart(fig, width="stretch")

st.subheader("Most recent transactions of the period")
recent = cached(Q.recent_transactions, db, period, 10)
st.dataframe(
    recent,
    hide_index=True,
    width="stretch",
    column_config={"amount": st.column_config.NumberColumn(format="%.2f")},
)
