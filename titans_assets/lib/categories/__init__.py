"""Where a transaction's category comes from besides the export: the user's corrections
(corrections.py) and rules, written (rules.yaml) or learned from corrections (rules.py).
Plain Python, parameterized SQL only; the tables are in sql/app_categories.sql."""
