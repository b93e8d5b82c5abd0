"""Entry script: `streamlit run titans_assets/dashboard/app.py` (what `titans dashboard` runs)."""

from pathlib import Path

import streamlit as st

from titans_assets.dashboard.common import sidebar_service_status

HERE = Path(__file__).parent
PAGES = [
    st.Page(HERE / "pages" / "overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page(HERE / "pages" / "balances.py", title="Balances", icon=":material/account_balance_wallet:"),
    st.Page(HERE / "pages" / "transactions.py", title="Transactions", icon=":material/receipt_long:"),
    st.Page(HERE / "pages" / "review.py", title="Review", icon=":material/fact_check:"),
    st.Page(HERE / "pages" / "predictions.py", title="Predictions", icon=":material/psychology:"),
    st.Page(HERE / "pages" / "anomalies.py", title="Anomalies", icon=":material/warning:"),
    st.Page(HERE / "pages" / "cashflow.py", title="Cash flow", icon=":material/trending_up:"),
    st.Page(HERE / "pages" / "models.py", title="Models", icon=":material/model_training:"),
    st.Page(HERE / "pages" / "health.py", title="Data health", icon=":material/health_and_safety:"),
]

st.set_page_config(page_title="Titans Finance", page_icon=":material/account_balance:", layout="wide")
page = st.navigation(PAGES)
sidebar_service_status()
page.run()
