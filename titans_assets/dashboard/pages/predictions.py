"""Predictions: the categories the champion filled in for the warehouse's unlabelled expenses (read from
predictions.transaction_categories, which the prediction asset writes: nothing is re-scored here), and
from the service one new transaction (category with alternatives, expected amount with its interval,
anomaly score with reasons) and a CSV of uncategorised transactions -> predicted categories."""

import datetime as dt
import hashlib

import pandas as pd
import plotly.express as px
import streamlit as st

from titans_assets.dashboard.common import cached, client, database, show_outcome
from titans_assets.lib.csv_contract import ContractError
from titans_assets.lib.dashboard import formatting as fmt
from titans_assets.lib.dashboard import predictions as P
from titans_assets.lib.dashboard import queries as Q
from titans_assets.lib.dashboard import uploads
from titans_assets.lib.dashboard.periods import Period
from titans_assets.lib.dashboard.service import chunked
from titans_assets.lib.db import Database

st.title("Predictions")
db = database()
bounds = cached(Q.data_bounds, db)
known_methods = cached(Q.payment_method_options, db) if bounds else []
service = client()

FILLED_DAYS = 90


@st.cache_data(ttl=60, show_spinner=False)
def filled_in(url: str, period: Period):
    return P.categorised(Database(url), period)


if bounds:
    st.subheader(f"Categories the model filled in (last {FILLED_DAYS} days)")
    filled = filled_in(
        db.url, Period(max(bounds.first, bounds.last - dt.timedelta(days=FILLED_DAYS - 1)), bounds.last)
    )
    if filled is None:
        st.info(
            "No stored category predictions yet: `titans materialize` writes predictions/transaction_categories "
            "once a category model is the champion."
        )
    elif filled.empty:
        st.success("Every expense of the period carries the export's category.")
    else:
        st.caption(
            f"{len(filled):,} expenses without a category in the export, with the champion's answer "
            f"(model version {', '.join(sorted(map(str, filled['model_version'].unique())))}), lowest "
            "confidence first: the ones most worth a look."
        )
        st.dataframe(
            filled.drop(columns=["export_category", "model_version"]).sort_values("confidence"),
            hide_index=True,
            width="stretch",
            column_config={
                "amount": st.column_config.NumberColumn(format="%.2f"),
                "confidence": st.column_config.ProgressColumn(min_value=0, max_value=1, format="%.2f"),
            },
        )
    st.divider()

st.subheader("One transaction")
with st.form("one"):
    c1, c2, c3 = st.columns(3)
    day = c1.date_input("Date", bounds.last if bounds else dt.date.today(), key="p_date")
    amount = c2.number_input(
        "Amount (expenses negative)", value=-54.99, step=1.0, format="%.2f", key="p_amount"
    )
    methods = known_methods or ["credit_card", "debit_card", "bank_transfer", "cash", "check", "paypal"]
    method = c3.selectbox("Payment method", methods, key="p_method")
    description = st.text_input("Description", "ADOBE *CREATIVE CLD", max_chars=500, key="p_description")
    reference = st.text_input("Reference (vendor or client, optional)", "", max_chars=200, key="p_reference")
    submitted = st.form_submit_button("Predict", key="p_submit")

if submitted:
    base = {"date": day.isoformat(), "payment_method": method, "description": description}
    if reference.strip():
        base["reference"] = reference
    cat = service.predict("category", {**base, "amount": float(amount)})
    category = cat.body["prediction"] if cat.ok else None
    amt = (
        service.predict(
            "amount", {k: v for k, v in base.items() if k != "reference"} | {"category": category}
        )
        if category
        else None
    )
    ano = service.predict(
        "anomaly", {**base, "amount": float(amount), **({"category": category} if category else {})}
    )
    st.session_state["p_results"] = (cat, amt, ano)

if "p_results" in st.session_state:
    cat, amt, ano = st.session_state["p_results"]
    c1, c2, c3 = st.columns(3)
    with c1:
        st.markdown("**Category**")
        if cat.ok:
            st.metric(
                "Predicted category",
                cat.body["prediction"],
                f"confidence {fmt.percent(cat.body['confidence'])}",
                delta_color="off",
            )
            alts = pd.DataFrame(cat.body["alternatives"])
            if not alts.empty:
                fig = px.bar(alts.iloc[::-1], x="confidence", y="category", orientation="h", range_x=[0, 1])
                fig.update_layout(height=220, margin=dict(l=0, r=0, t=0, b=0), yaxis_title="")
                st.plotly_chart(fig, width="stretch")
            st.caption(f"model version {cat.body.get('model_version')} ({cat.body.get('model_kind')})")
        else:
            show_outcome(cat, "category")
    with c2:
        st.markdown("**Expected amount**")
        if amt is None:
            st.info("Needs a category: the category prediction failed.")
        elif amt.ok:
            ci = amt.body["confidence_interval"]
            st.metric(
                f"Expected amount for {cat.body['prediction']}", fmt.money(amt.body["predicted_amount"])
            )
            st.write(f"Interval: {fmt.interval(ci['lower'], ci['upper'], ci['level'])}")
            st.caption(f"model version {amt.body.get('model_version')} ({amt.body.get('model_kind')})")
        else:
            show_outcome(amt, "amount")
    with c3:
        st.markdown("**Anomaly**")
        if ano.ok:
            st.metric(
                "Anomaly score",
                fmt.score(ano.body["anomaly_score"]),
                f"risk {ano.body['risk_level']}",
                delta_color="off",
            )
            for reason in ano.body["reasons"] or ["nothing unusual"]:
                st.write(f"- {reason}")
            st.caption(f"model version {ano.body.get('model_version')} ({ano.body.get('model_kind')})")
        else:
            show_outcome(ano, "anomaly")

st.divider()
st.subheader("A CSV of uncategorised transactions")
st.caption(
    "Columns Date (YYYY-MM-DD), Description, Amount; Reference and Payment Method when present. "
    "Other columns are kept. Up to 20,000 rows, sent in batches of 1,000."
)
upload = st.file_uploader("CSV file", type=["csv", "txt"], key="p_upload")
if upload is not None:
    data = upload.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    try:
        parsed = uploads.read_uncategorised(data)
    except ContractError as exc:
        st.error(str(exc))
        st.stop()
    if len(parsed.rejected):
        st.warning(f"{len(parsed.rejected):,} row(s) could not be read and were left out:")
        st.dataframe(parsed.rejected, hide_index=True)
    if not parsed.requests:
        st.info("No readable rows in the file.")
        st.stop()
    done = st.session_state.get("p_upload_result")
    if not done or done[0] != digest:
        with st.spinner(f"Predicting {len(parsed.requests):,} categories ..."):
            out = service.predict_batches("category", chunked(parsed.requests))
        done = (digest, out)
        if out.ok:
            st.session_state["p_upload_result"] = done
    out = done[1]
    if not out.ok:
        show_outcome(out, "category")
    else:
        result = uploads.with_predictions(parsed.rows, out.body["predictions"])
        st.success(
            f"Predicted {len(result):,} categories (model version "
            f"{', '.join(map(str, out.body['model_versions']))})."
        )
        st.dataframe(result, hide_index=True, width="stretch")
        st.download_button(
            "Download CSV with predicted categories",
            uploads.to_csv(result),
            file_name=upload.name.rsplit(".", 1)[0] + "_categorised.csv",
            mime="text/csv",
            key="p_download",
            on_click="ignore",
        )
