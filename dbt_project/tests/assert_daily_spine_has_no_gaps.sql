-- fct_daily_metrics has exactly one row per calendar day from the first to the last transaction
-- date: as many rows as days in the range, no duplicates, and the range matches fct_transactions.
with metrics as (

    select
        count(*)                     as n_rows,
        count(distinct metric_date)  as n_days,
        min(metric_date)             as first_day,
        max(metric_date)             as last_day
    from {{ ref('fct_daily_metrics') }}

),

txns as (

    select min(txn_date) as first_txn, max(txn_date) as last_txn
    from {{ ref('fct_transactions') }}

)

select metrics.*, txns.*
from metrics
cross join txns
where metrics.n_rows <> metrics.n_days
   or metrics.n_rows <> coalesce({{ dbt.datediff('metrics.first_day', 'metrics.last_day', 'day') }} + 1, 0)
   or metrics.first_day is distinct from txns.first_txn
   or metrics.last_day is distinct from txns.last_txn
