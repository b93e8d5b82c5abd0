"""The Streamlit dashboard (`titans dashboard`): app.py is the entry script, pages/ one file per page.

Pages stay thin: their data comes from titans_assets/lib/dashboard (SQL on the marts, the service
client, period and formatting logic), which is unit-tested without Streamlit.
"""
