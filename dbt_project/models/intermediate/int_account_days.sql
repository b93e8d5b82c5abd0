-- One row per account, day and currency of fct_transactions: the day's signed amounts (transfers
-- included) and its rows. fct_daily_balances and dim_accounts read these groups (a few per account
-- and day) instead of every transaction on each build.
-- Incremental (macros/incremental.sql): a run rebuilds the days whose transactions it replaced
-- (int_transaction_changes, before and after), every account of those days, through the index on
-- fct_transactions.txn_date.
-- depends_on: {{ ref('int_transaction_changes') }}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook=["{{ delete_slice('t.txn_date in ' ~ changed_days()) }}"],
) }}
select account, txn_date, currency, sum(amount) as day_net, count(*) as transactions
from {{ ref('fct_transactions') }}
{%- if is_incremental() %}
where txn_date in {{ changed_days() }}
{%- endif %}
group by account, txn_date, currency
