"""Review: the transactions most worth a look (lowest confidence x largest amount, new merchants first;
lib/categories/review.py), one click to accept the predicted category, a select and Save to change it, an accept
of every open row of one merchant, and the learned rules the corrections proposed (accept / reject)."""

import pandas as pd
import streamlit as st

from titans_assets.dashboard.common import database, require_data
from titans_assets.lib.categories.corrections import CorrectionError
from titans_assets.lib.categories.rules import RulesError
from titans_assets.lib.dashboard import formatting as fmt
from titans_assets.lib.dashboard import review as RV

st.title("Review")
db = database()
require_data(db)
if not RV.enriched_ready(db):
    st.info(
        "The review queue reads `marts.fct_transactions_enriched`, which is not built yet: run "
        "`titans materialize`."
    )
    st.stop()


def _said(saved: RV.Saved) -> None:
    """What the last action did, shown once after the rerun."""
    lines = [
        f"{c.transaction_id[:10]}…: {c.old or 'no category'} → **{c.new}**" for c in saved.corrections[:5]
    ]
    more = len(saved.corrections) - len(lines)
    text = (
        f"Saved {len(saved.corrections)} correction(s): "
        + "; ".join(lines)
        + (f" and {more} more" if more > 0 else "")
    )
    if saved.proposed:
        text += " — proposed rule(s): " + ", ".join(f"{r.payee} → {r.category}" for r in saved.proposed)
    st.session_state["rv_said"] = text


def _run(action, *args) -> None:
    try:
        result = action(db, *args)
    except (CorrectionError, RulesError) as exc:
        st.session_state["rv_error"] = str(exc)
    else:
        if isinstance(result, RV.Saved):
            _said(result)
        else:
            st.session_state["rv_said"] = f"Rule {result.rule_id} {result.status}."
    st.rerun()


if "rv_said" in st.session_state:
    st.success(st.session_state.pop("rv_said"))
if "rv_error" in st.session_state:
    st.error(st.session_state.pop("rv_error"))

rows = RV.queue(db, limit=None)
cols = st.columns(3)
cols[0].metric("To review", fmt.count(len(rows)))
cols[1].metric("New merchants", fmt.count(rows.loc[rows["new_merchant"], "merchant_key"].nunique()))
cols[2].metric("Without any category", fmt.count(int(rows["predicted"].isna().sum())))

if rows.empty:
    st.info("Nothing to review: every expense has its category from the export, a correction or a rule.")
else:
    st.caption(
        f"The {min(RV.PAGE_ROWS, len(rows))} most worth a look of {len(rows):,}: lowest confidence × "
        "largest amount, merchants never labelled first. Accept takes the predicted category; "
        "pick another and Save to change it."
    )
    options = RV.categories(db)
    widths = [1.1, 3, 1.1, 2.2, 1.5, 2.6, 1.2]  # date, description, amount, predicted, Accept, select, Save
    head = st.columns(widths)
    for col, name in zip(
        head, ("date", "description", "amount", "predicted (confidence)", "", "change to", "")
    ):
        col.markdown(f"**{name}**" if name else "")
    for row in rows.head(RV.PAGE_ROWS).itertuples(index=False):
        tid = row.transaction_id
        c = st.columns(widths, vertical_alignment="center")
        c[0].write(str(row.txn_date))
        c[1].write(f"{row.description}" + (" · :blue-badge[new merchant]" if row.new_merchant else ""))
        c[2].write(fmt.money(row.amount))
        if row.predicted is None:
            c[3].write("— (no prediction)")
        else:
            c[3].write(
                f"{row.predicted} ({row.confidence:.0%})" if pd.notna(row.confidence) else str(row.predicted)
            )
        if c[4].button("Accept", key=f"rv_accept_{tid}", disabled=row.predicted is None):
            _run(RV.correct, {tid: row.predicted})
        choices = list(dict.fromkeys([*row.alternatives, *options]))
        picked = c[5].selectbox(
            "Change to",
            choices,
            index=None,
            placeholder="change to…",
            key=f"rv_cat_{tid}",
            label_visibility="collapsed",
            accept_new_options=True,
        )
        if c[6].button("Save", key=f"rv_save_{tid}", disabled=picked is None):
            _run(RV.correct, {tid: picked})

    st.subheader("Accept a whole merchant")
    merchants = (
        rows[rows["predicted"].notna()]
        .groupby("merchant_key", sort=False)
        .agg(
            n=("transaction_id", "size"),
            shown=("description", "first"),
            predicted=("predicted", lambda s: ", ".join(sorted(set(s))[:3])),
        )
    )
    if merchants.empty:
        st.caption("No open row has a predicted category to accept.")
    else:
        key = st.selectbox(
            "Merchant",
            merchants.index.tolist(),
            key="rv_merchant",
            format_func=lambda k: (
                f"{merchants.at[k, 'shown']} — {merchants.at[k, 'n']} open "
                f"row(s), predicted {merchants.at[k, 'predicted']}"
            ),
        )
        n = int(merchants.at[key, "n"])
        if st.button(f"Accept the predicted category of all {n} row(s)", key="rv_bulk"):
            _run(lambda d: RV.accept(d, RV.merchant_rows(d, key)))

st.subheader("Proposed rules")
proposed = RV.proposed_rules(db)
if proposed.empty:
    st.caption(
        "No rule waiting: after three consistent corrections of one merchant a payee rule is proposed "
        "here; once accepted it categorises that merchant's transactions before the model."
    )
for rule in proposed.itertuples(index=False):
    with st.container(border=True):
        st.markdown(
            f"**{rule.payee} → {rule.category}** — {rule.rule} · {rule.evidence} consistent correction(s)"
        )
        evidence = RV.rule_evidence(db, rule.payee)
        st.dataframe(
            evidence,
            hide_index=True,
            width="stretch",
            key=f"rv_ev_{rule.rule_id}",
            column_config={"amount": st.column_config.NumberColumn(format="%.2f")},
        )
        a, b, _ = st.columns([1, 1, 6])
        if a.button("Accept rule", key=f"rv_rule_yes_{rule.rule_id}"):
            _run(RV.decide, rule.rule_id, True)
        if b.button("Reject", key=f"rv_rule_no_{rule.rule_id}"):
            _run(RV.decide, rule.rule_id, False)
