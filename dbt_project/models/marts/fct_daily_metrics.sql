-- One row per calendar day from the first to the last transaction date, days without
-- transactions included (zeros, null average), with a running balance. Transfers between the
-- user's own accounts (fct_transactions.is_transfer) are left out of every figure: net is what
-- left or entered the household. The spine still spans every transaction, transfers included.
with all_txns as (

    -- in the reporting currency (fct_transactions.amount_reporting): currencies are never summed as they are
    select txn_date, txn_type, amount_reporting as amount, category, is_transfer
    from {{ ref('fct_transactions') }}

),

txns as (

    select txn_date, txn_type, amount, category
    from all_txns
    where not is_transfer

),

spine as (

    {{ day_spine('(select min(txn_date) from all_txns)', '(select max(txn_date) from all_txns)') }}

),

daily as (

    select
        txn_date,
        sum(case when txn_type = 'Income' then amount else 0 end)   as total_income,
        sum(case when txn_type = 'Expense' then -amount else 0 end) as total_expenses,
        sum(amount)                                                 as net,
        count(*)                                                    as transaction_count,
        count(distinct category)                                    as unique_categories,
        avg(amount)                                                 as avg_transaction_amount
    from txns
    group by txn_date

)

select
    spine.date_day                                              as metric_date,
    coalesce(daily.total_income, 0)                             as total_income,
    coalesce(daily.total_expenses, 0)                           as total_expenses,
    coalesce(daily.net, 0)                                      as net,
    coalesce(daily.transaction_count, 0)                        as transaction_count,
    coalesce(daily.unique_categories, 0)                        as unique_categories,
    round(daily.avg_transaction_amount, 2)                      as avg_transaction_amount,
    sum(coalesce(daily.net, 0)) over (
        order by spine.date_day
        rows between unbounded preceding and current row
    )                                                           as running_balance
from spine
left join daily
    on spine.date_day = daily.txn_date
