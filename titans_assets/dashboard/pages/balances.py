"""Balances: each account's end-of-day balance and the household's total per currency (from
fct_daily_balances, opened from the banks' statements or `titans account set-balance`, not cumulative
net flow), and the transfers between the user's own accounts (moved, not spent)."""

import plotly.graph_objects as go
import streamlit as st

from titans_assets.dashboard.common import cached, database, period_picker, require_data
from titans_assets.lib.dashboard import formatting as fmt
from titans_assets.lib.dashboard import queries as Q
from titans_assets.lib.dashboard import views

st.title("Balances")
db = database()
bounds = require_data(db)
period = period_picker(bounds, "balances", default="Last 12 months")
currencies = cached(Q.balance_currencies, db)
if not currencies:
    st.info("No balances yet: `titans materialize` builds them.")
    st.stop()
reporting = cached(Q.reporting_currency, db)
currency = (
    st.sidebar.selectbox("Currency", currencies, key="balances_currency")
    if len(currencies) > 1
    else currencies[0]
)

accounts = cached(Q.account_balances, db, period.end, currency)
total = cached(Q.household_balance, db, period.end, currency)
cols = st.columns(3)
cols[0].metric(f"Total balance ({currency})", fmt.money(total))
cols[1].metric("Accounts", fmt.count(len(accounts)))
pairs, unpaired = cached(Q.transfer_counts, db, period)
cols[2].metric("Transfers between your accounts", fmt.count(pairs))
st.caption(
    f"At the end of {period.end}. Accounts in other currencies are not added in"
    + (f" (pick one of {', '.join(currencies)} in the sidebar)." if len(currencies) > 1 else ".")
)
for note in views.balance_notes(accounts, currency, reporting):
    st.caption(note)

st.subheader("Per account")
st.dataframe(
    views.account_balance_rows(accounts),
    hide_index=True,
    width="stretch",
    column_config={"balance": st.column_config.NumberColumn(format="%.2f")},
)

history = cached(Q.balance_history, db, currency, period.start, period.end)
fig = go.Figure()
for account, part in history.groupby("account", sort=True):
    total_line = account == "(total)"
    fig.add_trace(
        go.Scatter(
            x=part["balance_date"],
            y=part["balance"],
            mode="lines",
            name=account,
            line={"width": 3 if total_line else 1.5},
        )
    )
fig.update_layout(height=420, margin=dict(l=0, r=0, t=10, b=0), yaxis_title=f"balance ({currency})")
st.plotly_chart(fig, width="stretch")

st.subheader("Transfers between your accounts")
st.caption(
    "Money moved from one of your accounts to another: counted once, as neither spending nor income."
    + (
        f" {fmt.count(unpaired)} rows look like a transfer but their other side is missing (a file not "
        "loaded?): they are still counted as spending or income."
        if unpaired
        else ""
    )
)
moved = cached(Q.transfers, db, period)
if moved.empty:
    st.info("No transfers between your accounts in this period.")
else:
    st.dataframe(
        moved,
        hide_index=True,
        width="stretch",
        column_config={"amount": st.column_config.NumberColumn(format="%.2f")},
    )
