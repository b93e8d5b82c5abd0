-- One row per calendar day of fct_daily_metrics (every day, no gaps: the spine comes from there):
-- the day's flows (net_flow is the forecasting target) and features for forecasting it.
--
-- POINT IN TIME. Lags and rolling statistics use only earlier days: windows end the day before
-- metric_date (RANGE ... INTERVAL '1 day' PRECEDING) and are null until the window is complete, so
-- a model never sees the target day or a partial window. Calendar features are functions of the
-- date alone. income, expenses and transaction_count are the day's own values, like net_flow.
with daily as (

    select
        metric_date,
        net                 as net_flow,
        total_income        as income,
        total_expenses      as expenses,
        transaction_count,
        running_balance
    from {{ ref('fct_daily_metrics') }}

),

history as (

    select
        metric_date,
        net_flow,
        income,
        expenses,
        transaction_count,
        running_balance - net_flow                                          as balance_before,
        row_number() over (order by metric_date) - 1                        as history_days,
        -- the spine has every day (tested), so the n-th previous row is the day n days earlier
        lag(net_flow, 1) over w_days                                        as net_flow_lag_1d,
        lag(net_flow, 7) over w_days                                        as net_flow_lag_7d,
        lag(net_flow, 14) over w_days                                       as net_flow_lag_14d,
        lag(net_flow, 21) over w_days                                       as net_flow_lag_21d,
        lag(net_flow, 28) over w_days                                       as net_flow_lag_28d,
        count(*) over w_7d                                                  as n_7d,
        avg(net_flow) over w_7d                                             as net_flow_mean_7d,
        stddev_samp(net_flow) over w_7d                                     as net_flow_std_7d,
        sum(income) over w_7d                                               as income_sum_7d,
        sum(expenses) over w_7d                                             as expenses_sum_7d,
        avg(transaction_count) over w_7d                                    as transaction_count_mean_7d,
        count(*) over w_28d                                                 as n_28d,
        avg(net_flow) over w_28d                                            as net_flow_mean_28d,
        stddev_samp(net_flow) over w_28d                                    as net_flow_std_28d,
        sum(income) over w_28d                                              as income_sum_28d,
        sum(expenses) over w_28d                                            as expenses_sum_28d,
        avg(transaction_count) over w_28d                                   as transaction_count_mean_28d
    from daily
    window
        w_days as (order by metric_date),
        w_7d as (order by metric_date range between interval '7 days' preceding and interval '1 day' preceding),
        w_28d as (order by metric_date range between interval '28 days' preceding and interval '1 day' preceding)

)

select
    h.metric_date,
    -- the day itself (net_flow is the target)
    h.net_flow,
    h.income,
    h.expenses,
    h.transaction_count,

    -- calendar
    cal.day_of_week,
    cal.day_of_month,
    cal.month,
    cal.quarter,
    cal.day_of_year,
    cal.dow_sin,
    cal.dow_cos,
    cal.dom_sin,
    cal.dom_cos,
    cal.month_sin,
    cal.month_cos,
    cal.is_weekend,
    cal.is_holiday,
    cal.is_business_day,
    cal.is_month_start,
    cal.is_month_end,
    cal.is_payday,
    cal.days_since_payday,
    cal.days_until_payday,

    -- history (strictly earlier days)
    h.history_days,
    h.balance_before,
    h.net_flow_lag_1d,
    h.net_flow_lag_7d,
    h.net_flow_lag_14d,
    h.net_flow_lag_28d,
    -- seasonal naive: the mean of the same weekday over the last 4 weeks
    (h.net_flow_lag_7d + h.net_flow_lag_14d + h.net_flow_lag_21d + h.net_flow_lag_28d) / 4.0
                                                                            as net_flow_same_weekday_mean_4w,
    case when h.n_7d = 7 then cast(h.net_flow_mean_7d as double precision) end
                                                                            as net_flow_mean_7d,
    case when h.n_7d = 7 then cast(h.net_flow_std_7d as double precision) end
                                                                            as net_flow_std_7d,
    case when h.n_28d = 28 then cast(h.net_flow_mean_28d as double precision) end
                                                                            as net_flow_mean_28d,
    case when h.n_28d = 28 then cast(h.net_flow_std_28d as double precision) end
                                                                            as net_flow_std_28d,
    case when h.n_7d = 7 then h.income_sum_7d end                           as income_sum_7d,
    case when h.n_7d = 7 then h.expenses_sum_7d end                         as expenses_sum_7d,
    case when h.n_28d = 28 then h.income_sum_28d end                        as income_sum_28d,
    case when h.n_28d = 28 then h.expenses_sum_28d end                      as expenses_sum_28d,
    case when h.n_7d = 7 then cast(h.transaction_count_mean_7d as double precision) end
                                                                            as transaction_count_mean_7d,
    case when h.n_28d = 28 then cast(h.transaction_count_mean_28d as double precision) end
                                                                            as transaction_count_mean_28d

from history as h
inner join {{ ref('ml_calendar_features') }} as cal
    on h.metric_date = cal.calendar_date
