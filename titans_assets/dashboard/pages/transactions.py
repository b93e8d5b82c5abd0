"""Transactions: filters (dates, account, category, type, amount, text), monthly income vs expenses,
the amount distribution, payment methods, a sorted table with a CSV export of every filtered row, and
the category of one row changed (a correction, as on the Review page)."""

import datetime as dt

import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from titans_assets.dashboard.common import cached, database, require_data
from titans_assets.lib.categories.corrections import CorrectionError
from titans_assets.lib.dashboard import formatting as fmt
from titans_assets.lib.dashboard import queries as Q
from titans_assets.lib.dashboard import review as RV

st.title("Transactions")
db = database()
bounds = require_data(db)
options = cached(Q.filter_options, db)

with st.sidebar:
    st.subheader("Filters")
    picked = st.date_input(
        "Dates",
        (max(bounds.first, bounds.last - dt.timedelta(days=364)), bounds.last),
        min_value=bounds.first,
        max_value=bounds.last,
        key="tx_dates",
    )
    start, end = (
        picked if isinstance(picked, (tuple, list)) and len(picked) == 2 else (bounds.first, bounds.last)
    )
    accounts = st.multiselect("Account", options.accounts, key="tx_accounts")
    categories = st.multiselect("Category", options.categories, key="tx_categories")
    types = st.multiselect("Type", options.types, key="tx_types")
    low = st.number_input("Amount at least (absolute)", min_value=0.0, value=0.0, step=10.0, key="tx_min")
    high = st.number_input(
        "Amount at most (absolute, 0 = no limit)", min_value=0.0, value=0.0, step=10.0, key="tx_max"
    )
    text = st.text_input("Search description / reference", key="tx_text", max_chars=200)

f = Q.TransactionFilter(
    start=start,
    end=end,
    accounts=tuple(accounts),
    categories=tuple(categories),
    types=tuple(types),
    min_amount=low if low > 0 else None,
    max_amount=high if high > 0 else None,
    text=text,
)
view = cached(Q.filtered_view, db, f)
summary = view.summary
cols = st.columns(4)
cols[0].metric("Transactions", fmt.count(summary.transactions))
cols[1].metric("Income", fmt.money(summary.income))
cols[2].metric("Expenses", fmt.money(summary.expenses))
cols[3].metric("Net", fmt.money(summary.net))
if summary.transactions == 0:
    st.info("No transactions match these filters.")
    st.stop()

left, right = st.columns(2)
with left:
    st.subheader("Monthly income vs expenses")
    monthly = view.monthly
    fig = go.Figure(
        [
            go.Bar(x=monthly["month"], y=monthly["income"], name="income"),
            go.Bar(x=monthly["month"], y=monthly["expenses"], name="expenses"),
        ]
    )
    fig.update_layout(barmode="group", height=360, margin=dict(l=0, r=0, t=10, b=0))
    st.plotly_chart(fig, width="stretch")
with right:
    st.subheader("Amount distribution")
    hist = view.histogram
    fig = go.Figure(
        go.Bar(
            x=(hist["lower"] * hist["upper"]) ** 0.5,
            y=hist["transactions"],
            width=(hist["upper"] - hist["lower"]),
            customdata=hist[["lower", "upper"]].to_numpy(),
            hovertemplate="%{customdata[0]:,.2f} .. %{customdata[1]:,.2f}: %{y} transactions",
        )
    )
    fig.update_layout(
        xaxis_type="log",
        xaxis_title="|amount| (log scale)",
        yaxis_title="transactions",
        height=360,
        margin=dict(l=0, r=0, t=10, b=0),
    )
    st.plotly_chart(fig, width="stretch")

st.subheader("Payment methods")
methods = view.payment_methods
fig = px.bar(
    methods, x="payment_method", y="transactions", hover_data=["total"], labels={"payment_method": ""}
)
fig.update_layout(height=300, margin=dict(l=0, r=0, t=10, b=0))
st.plotly_chart(fig, width="stretch")

st.subheader("Rows")
c1, c2 = st.columns([3, 1])
sort = c1.selectbox("Sort by", list(Q.SORTABLE), key="tx_sort")
descending = c2.toggle("Descending", value=True, key="tx_desc")
table = cached(Q.transactions_table, db, f, sort, descending)
if summary.transactions > len(table):
    st.caption(
        f"Showing the first {len(table):,} of {summary.transactions:,} rows in this order; "
        "the CSV holds all of them."
    )
st.dataframe(
    table,
    hide_index=True,
    width="stretch",
    column_config={"amount": st.column_config.NumberColumn(format="%.2f")},
)
st.download_button(
    "Download CSV of the filtered rows",
    lambda: Q.transactions_csv(db, f, sort, descending),
    file_name=f"transactions_{start}_{end}.csv",
    mime="text/csv",
    key="tx_csv",
    on_click="ignore",
)

st.subheader("Change a category")
shown = table.head(RV.CHANGE_ROWS)
picked_row = st.selectbox(
    "Transaction (of the rows above, in their order)",
    shown["transaction_id"].tolist(),
    index=None,
    placeholder="pick a row…",
    key="tx_fix_row",
    format_func=lambda t: RV.row_label(shown.loc[shown["transaction_id"] == t].iloc[0]),
)
new_category = st.selectbox(
    "New category",
    RV.categories(db),
    index=None,
    placeholder="pick or type a category…",
    key="tx_fix_cat",
    accept_new_options=True,
)
if st.button("Save", key="tx_fix_save", disabled=picked_row is None or new_category is None):
    try:
        saved = RV.correct(db, {picked_row: new_category})
    except CorrectionError as exc:
        st.error(str(exc))
    else:
        c = saved.corrections[0]
        st.success(
            f"Saved: {c.old or 'no category'} → **{c.new}** (the marts show it after the next "
            "`titans materialize`; it is a training label at the next retrain)"
        )
