-- fct_daily_metrics per currency, in that currency (no conversion): one row per day with
-- transactions and currency (null: files that state none). Transfers between the user's own
-- accounts are left out, as there.
select
    txn_date                                                        as metric_date,
    currency,
    sum(case when txn_type = 'Income' then amount else 0 end)       as total_income,
    sum(case when txn_type = 'Expense' then -amount else 0 end)     as total_expenses,
    sum(amount)                                                     as net,
    count(*)                                                        as transaction_count
from {{ ref('fct_transactions') }}
where not is_transfer
group by txn_date, currency
