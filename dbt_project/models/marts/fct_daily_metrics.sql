-- One row per calendar day from the first to the last transaction date, days without
-- transactions included (zeros, null average), with a running balance.
with txns as (

    select txn_date, txn_type, amount, category
    from {{ ref('fct_transactions') }}

),

spine as (

    {{ day_spine('(select min(txn_date) from txns)', '(select max(txn_date) from txns)') }}

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
