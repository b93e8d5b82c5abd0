-- fct_daily_metrics must agree with fct_transactions: each day's net equals the sum of that day's
-- signed amounts (days missing on either side count as 0), net = income - expenses, and the totals
-- (sum of net, last running balance) equal the sum of all amounts. Transfers between the user's
-- own accounts count on neither side. Tolerance 0.005. The totals add up the per-day sums (the same
-- number): summing the transactions again scanned fct_transactions three times (1M rows: 0.74 s
-- against 0.26 s).
with non_transfers as (

    -- in the reporting currency, as fct_daily_metrics sums them
    select txn_date, amount_reporting as amount from {{ ref('fct_transactions') }} where not is_transfer

),

txn_days as (

    select txn_date, sum(amount) as amount_sum, count(*) as n
    from non_transfers
    group by txn_date

),

per_day as (

    select
        coalesce(m.metric_date, t.txn_date) as day,
        'day net differs from sum of amounts' as problem,
        m.net as metrics_value,
        t.amount_sum as transactions_value
    from {{ ref('fct_daily_metrics') }} as m
    full outer join txn_days as t
        on m.metric_date = t.txn_date
    where m.metric_date is null
       or abs(m.net - coalesce(t.amount_sum, 0)) > 0.005
       or m.transaction_count <> coalesce(t.n, 0)
       or abs(m.net - (m.total_income - m.total_expenses)) > 0.005

),

totals as (

    select
        cast(null as date) as day,
        'total differs' as problem,
        (select sum(net) from {{ ref('fct_daily_metrics') }}) as metrics_value,
        (select sum(amount_sum) from txn_days) as transactions_value

),

last_balance as (

    select
        cast(null as date) as day,
        'last running_balance differs from total' as problem,
        (select running_balance from {{ ref('fct_daily_metrics') }}
         order by metric_date desc limit 1) as metrics_value,
        (select sum(amount_sum) from txn_days) as transactions_value

)

select * from per_day
union all
select * from totals
where abs(coalesce(metrics_value, 0) - coalesce(transactions_value, 0)) > 0.005
union all
select * from last_balance
where abs(coalesce(metrics_value, 0) - coalesce(transactions_value, 0)) > 0.005
