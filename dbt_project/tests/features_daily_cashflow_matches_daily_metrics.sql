-- ml_daily_cashflow has exactly the days of fct_daily_metrics with the same flows, the days are
-- consecutive (no gaps, no duplicates), and the lags are the earlier days' net_flow.
with features as (

    select * from {{ ref('ml_daily_cashflow') }}

),

metrics as (

    select * from {{ ref('fct_daily_metrics') }}

),

day_problems as (

    select
        coalesce(f.metric_date, m.metric_date)          as metric_date,
        case
            when f.metric_date is null then 'day missing from ml_daily_cashflow'
            when m.metric_date is null then 'day not in fct_daily_metrics'
            else 'flows differ from fct_daily_metrics'
        end                                             as problem
    from features as f
    full outer join metrics as m
        on f.metric_date = m.metric_date
    where f.metric_date is null
       or m.metric_date is null
       or f.net_flow <> m.net
       or f.income <> m.total_income
       or f.expenses <> m.total_expenses
       or f.transaction_count <> m.transaction_count

),

lag_problems as (

    select f.metric_date, 'a lag differs from the earlier day''s net_flow' as problem
    from features as f
    left join features as d1 on d1.metric_date = f.metric_date - 1
    left join features as d7 on d7.metric_date = f.metric_date - 7
    left join features as d28 on d28.metric_date = f.metric_date - 28
    where f.net_flow_lag_1d is distinct from d1.net_flow
       or f.net_flow_lag_7d is distinct from d7.net_flow
       or f.net_flow_lag_28d is distinct from d28.net_flow

),

spine_problems as (

    select cast(null as date) as metric_date, 'days are not consecutive' as problem
    from (
        select count(*) as n_rows, count(distinct metric_date) as n_days,
               min(metric_date) as first_day, max(metric_date) as last_day
        from features
    ) as s
    where s.n_rows <> s.n_days
       or s.n_rows <> coalesce(s.last_day - s.first_day + 1, 0)

)

select * from day_problems
union all
select * from lag_problems
union all
select * from spine_problems
