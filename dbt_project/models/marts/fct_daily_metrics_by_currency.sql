-- fct_daily_metrics per currency, in that currency (no conversion): one row per day with
-- transactions and currency (null: files that state none). Transfers between the user's own
-- accounts are left out, as there.
--
-- Incremental (macros/incremental.sql): a run rebuilds the days whose transactions changed
-- (int_transaction_changes, before and after).
-- depends_on: {{ ref('int_transaction_changes') }}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook=["{{ delete_slice('t.metric_date in ' ~ changed_days()) }}"],
) }}
select
    txn_date                                                        as metric_date,
    currency,
    sum(case when txn_type = 'Income' then amount else 0 end)       as total_income,
    sum(case when txn_type = 'Expense' then -amount else 0 end)     as total_expenses,
    sum(amount)                                                     as net,
    count(*)                                                        as transaction_count
from {{ ref('fct_transactions') }}
where not is_transfer
{%- if is_incremental() %}
  and txn_date in {{ changed_days() }}
{%- endif %}
group by txn_date, currency
