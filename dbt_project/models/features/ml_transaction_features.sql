-- One row per fct_transactions row: identifying/label columns plus engineered features for the ML
-- models, grouped time / amount / categorical / behavioral (documented in _features.yml).
--
-- POINT IN TIME. A row's features use only transactions dated on or before its txn_date (there is no
-- time of day, so the whole day counts as "now"): nothing here looks at a later date, and no
-- aggregate spans a whole partition. Two kinds of history:
--   *_prior*  : strictly earlier days ("what was known when the day began"); the row's own amount and
--               labels never enter its own baselines (z-scores, shares, first-time flags).
--   windows   : calendar days ending at and including txn_date (7d = txn_date-6 .. txn_date), and
--               same-day counts (velocity, duplicates); same-day rows see each other.
-- So every row of a day gets the same history, whatever the order of the rows inside the day.
--
-- HOW. Rows are first aggregated per day (account, account x category, category, account x
-- merchant, account x payment method); the windows run over those daily rows (ROWS ... 1 PRECEDING
-- for the expanding past, RANGE INTERVAL 'N days' frames for calendar windows) and each transaction
-- joins back its day. No self-joins; 1M transactions build in seconds.
--
-- Medians and percentile positions are approximate: each day carries a histogram of abs(amount) on
-- a log scale (6 bins per decade from 1 cent to 1M, so a bin spans a factor 10^(1/6) = 1.47),
-- cumulated over the past; values are interpolated linearly (in log space) inside a bin.
{#- Planner settings for this statement only (SET LOCAL ends with the model's transaction). The
    joins below are equi-joins of 1M rows with daily aggregates built in CTEs, which have no
    statistics: PostgreSQL estimates 1 row, then picks nested loops or a merge join on `account`
    alone (a near cross join, minutes at 1M rows). Hash joins are right for every join here. -#}
{{ config(pre_hook=[
    "set local work_mem = '256MB'",
    "set local enable_nestloop = off",
    "set local enable_mergejoin = off",
]) }}

{%- set bins_per_decade = 6 %}
{%- set min_log10 = -2 %}
{%- set n_bins = 8 * bins_per_decade %}

{#- Prior-history statistics of abs(amount) for one aggregation level (columns n_prior,
    sum_abs_prior, sumsq_abs_prior, le_prior[1..n_bins], as produced by the *_hist CTEs). -#}
{%- set prior_stats -%}
        cast(case when n_prior > 0 then sum_abs_prior / n_prior end as double precision)
                                                                                     as prior_mean_abs,
        cast(case when n_prior > 1 then sqrt(greatest(
            (sumsq_abs_prior - sum_abs_prior * sum_abs_prior / n_prior) / (n_prior - 1), 0)) end
            as double precision)                                                     as prior_std_abs,
        case when n_prior > 0 then case
            {%- for i in range(1, n_bins + 1) %}
            when le_prior[{{ i }}] * 2 >= n_prior then {{ i }}
            {%- endfor %}
        end end                                                                      as median_bin
{%- endset %}

{#- Approximate median from median_bin (the first bin whose cumulative count reaches half the
    prior rows), linear in log10 space inside the bin; double precision (numeric power is slow). -#}
{%- set median_from_bin -%}
        power(10.0, {{ min_log10 }} + (
            (median_bin - 1)
            + (cast(n_prior as double precision) / 2 - coalesce(le_prior[median_bin - 1], 0))
              / nullif(le_prior[median_bin] - coalesce(le_prior[median_bin - 1], 0), 0)
        ) / {{ bins_per_decade }}.0)
{%- endset %}

with txns as (

    select
        transaction_id,
        txn_date,
        account,
        source_file,
        line_number,
        txn_type,
        description,
        reference,
        merchant,
        payment_method,
        category,
        amount,
        abs(amount)                                                         as abs_amount,
        cast(abs(amount) as double precision)                               as abs_f,
        cast(round(abs(amount) * 100) as bigint)                            as abs_cents,
        case when txn_type = 'Expense' then 1 else 0 end                    as is_expense,
        case when txn_type = 'Expense' then -amount else 0 end              as expense_amount,
        ln(1 + cast(abs(amount) as double precision))                       as log_abs_amount,
        -- missing labels are a level of their own for the frequency encodings
        coalesce(category, '')                                              as category_key,
        coalesce(payment_method, '')                                        as payment_method_key,
        -- position on the log-scale histogram: bin_pos in [0, n_bins) inside the covered range
        case when amount <> 0 then
            (log(cast(abs(amount) as double precision)) - ({{ min_log10 }})) * {{ bins_per_decade }}
        end                                                                 as bin_pos
    from {{ ref('fct_transactions') }}

),

binned as (

    select
        txns.*,
        case
            when bin_pos is null or bin_pos < 0 then 1
            when bin_pos >= {{ n_bins }} then {{ n_bins }}
            else cast(floor(bin_pos) as integer) + 1
        end                                                                 as amount_bin,
        case
            when bin_pos is null or bin_pos < 0 then cast(0 as double precision)
            when bin_pos >= {{ n_bins }} then cast(1 as double precision)
            else bin_pos - floor(bin_pos)
        end                                                                 as amount_bin_frac
    from txns

),

-- ---------------------------------------------------------------- daily aggregates
acct_cat_day as (

    select
        account,
        category_key,
        txn_date,
        cast(count(*) as integer)                                           as n,
        cast(sum(is_expense) as integer)                                    as n_expense,
        sum(amount)                                                         as sum_amount,
        sum(expense_amount)                                                 as sum_expense,
        sum(abs_amount)                                                     as sum_abs,
        sum(abs_amount * abs_amount)                                        as sumsq_abs,
        sum(log_abs_amount)                                                 as sum_log,
        sum(log_abs_amount * log_abs_amount)                                as sumsq_log,
        max(abs_amount)                                                     as max_abs,
        {%- for i in range(1, n_bins + 1) %}
        cast(count(*) filter (where amount_bin <= {{ i }}) as integer)      as le_{{ i }}{{ "," if not loop.last }}
        {%- endfor %}
    from binned
    group by account, category_key, txn_date

),

acct_merchant_day as (

    select
        account,
        merchant,
        txn_date,
        cast(count(*) as integer)                                           as n,
        sum(abs_amount)                                                     as sum_abs,
        sum(abs_amount * abs_amount)                                        as sumsq_abs
    from binned
    where merchant is not null
    group by account, merchant, txn_date

),

acct_pm_day as (

    select account, payment_method_key, txn_date, cast(count(*) as integer) as n
    from binned
    group by account, payment_method_key, txn_date

),

-- identical charges: same account, day, amount and counterparty
same_charge_day as (

    select
        account,
        txn_date,
        amount,
        coalesce(merchant, lower(description))                              as charge_key,
        cast(count(*) as integer)                                           as n
    from binned
    group by account, txn_date, amount, coalesce(merchant, lower(description))

),

-- ---------------------------------------------------------------- account x merchant history
acct_merchant_hist as (

    select
        account,
        merchant,
        txn_date,
        n                                                                   as merchant_txn_count_same_day,
        coalesce(sum(n) over w_prior, 0)                                    as n_prior,
        sum(sum_abs) over w_prior                                           as sum_abs_prior,
        sum(sumsq_abs) over w_prior                                         as sumsq_abs_prior,
        lag(txn_date) over w_days                                           as prev_date,
        first_value(txn_date) over w_days                                   as first_date,
        row_number() over w_days - 1                                        as active_days_prior,
        coalesce(sum(n) over (
            partition by account, merchant order by txn_date
            range between interval '30 days' preceding and interval '1 day' preceding
        ), 0)                                                               as merchant_count_prior_30d,
        coalesce(sum(n) over (
            partition by account, merchant order by txn_date
            range between interval '90 days' preceding and interval '1 day' preceding
        ), 0)                                                               as merchant_count_prior_90d
    from acct_merchant_day
    window
        w_days as (partition by account, merchant order by txn_date),
        w_prior as (partition by account, merchant order by txn_date rows between unbounded preceding and 1 preceding)

),

acct_merchant_stats as (

    select
        account,
        merchant,
        txn_date,
        merchant_txn_count_same_day,
        n_prior                                                             as merchant_prior_count,
        case when n_prior = 0 then 1 else 0 end                             as is_first_time_merchant,
        txn_date - prev_date                                                as merchant_days_since_prev,
        merchant_count_prior_30d,
        merchant_count_prior_90d,
        case when active_days_prior >= 2 then
            cast(prev_date - first_date as double precision) / (active_days_prior - 1)
        end                                                                 as merchant_mean_gap_days,
        cast(case when n_prior > 0 then sum_abs_prior / n_prior end as double precision)
                                                                            as merchant_prior_mean_abs,
        cast(case when n_prior > 1 then sqrt(greatest(
            (sumsq_abs_prior - sum_abs_prior * sum_abs_prior / n_prior) / (n_prior - 1), 0)) end
            as double precision)                                            as merchant_prior_std_abs
    from acct_merchant_hist

),

new_merchants_day as (

    select account, txn_date, count(*) as n_new_merchants
    from acct_merchant_hist
    where n_prior = 0
    group by account, txn_date

),

-- ---------------------------------------------------------------- account history
acct_day as (

    select
        d.account,
        d.txn_date,
        cast(sum(d.n) as integer)                                           as n,
        cast(sum(d.n_expense) as integer)                                   as n_expense,
        sum(d.sum_amount)                                                   as sum_amount,
        sum(d.sum_expense)                                                  as sum_expense,
        sum(d.sum_abs)                                                      as sum_abs,
        sum(d.sumsq_abs)                                                    as sumsq_abs,
        sum(d.sum_log)                                                      as sum_log,
        sum(d.sumsq_log)                                                    as sumsq_log,
        max(d.max_abs)                                                      as max_abs,
        {%- for i in range(1, n_bins + 1) %}
        cast(sum(d.le_{{ i }}) as integer)                                  as le_{{ i }},
        {%- endfor %}
        cast(coalesce(max(m.n_new_merchants), 0) as integer)                as n_new_merchants
    from acct_cat_day as d
    left join new_merchants_day as m
        on d.account = m.account and d.txn_date = m.txn_date
    group by d.account, d.txn_date

),

acct_hist as (

    select
        account,
        txn_date,
        n                                                                   as acct_txn_count_same_day,
        coalesce(sum(n) over w_prior, 0)                                    as n_prior,
        coalesce(sum(n_expense) over w_prior, 0)                            as n_expense_prior,
        sum(sum_abs) over w_prior                                           as sum_abs_prior,
        sum(sumsq_abs) over w_prior                                         as sumsq_abs_prior,
        sum(sum_log) over w_prior                                           as sum_log_prior,
        sum(sumsq_log) over w_prior                                         as sumsq_log_prior,
        cast(max(max_abs) over w_prior as double precision)                 as max_abs_prior,
        coalesce(sum(n_new_merchants) over w_prior, 0)                      as acct_prior_distinct_merchants,
        lag(txn_date) over w_days                                           as prev_date,
        array[
            {%- for i in range(1, n_bins + 1) %}
            cast(coalesce(sum(le_{{ i }}) over w_prior, 0) as integer){{ "," if not loop.last }}
            {%- endfor %}
        ]                                                                   as le_prior,
        {%- for days in [7, 14, 30] %}
        sum(n) over w_{{ days }}d                                           as acct_txn_count_{{ days }}d,
        cast(sum(sum_amount) over w_{{ days }}d as double precision)        as acct_amount_sum_{{ days }}d,
        sum(n_expense) over w_{{ days }}d                                   as acct_expense_count_{{ days }}d,
        cast(sum(sum_expense) over w_{{ days }}d as double precision)       as acct_expense_sum_{{ days }}d,
        {%- endfor %}
        count(*) over w_30d                                                 as acct_active_days_30d,
        coalesce(sum(n) over (
            partition by account order by txn_date
            range between interval '30 days' preceding and interval '1 day' preceding
        ), 0)                                                               as acct_txn_count_prior_30d
    from acct_day
    window
        w_days as (partition by account order by txn_date),
        w_prior as (partition by account order by txn_date rows between unbounded preceding and 1 preceding),
        w_7d as (partition by account order by txn_date range between interval '6 days' preceding and current row),
        w_14d as (partition by account order by txn_date range between interval '13 days' preceding and current row),
        w_30d as (partition by account order by txn_date range between interval '29 days' preceding and current row)

),

acct_stats as (

    select s.*, {{ median_from_bin }} as prior_median_abs
    from (
        select
            acct_hist.*,
            {{ prior_stats }},
            {%- for days in [7, 14, 30] %}
            acct_amount_sum_{{ days }}d / acct_txn_count_{{ days }}d       as acct_amount_mean_{{ days }}d,
            acct_expense_sum_{{ days }}d / nullif(acct_expense_count_{{ days }}d, 0)
                                                                            as acct_expense_mean_{{ days }}d,
            {%- endfor %}
            cast(acct_txn_count_same_day as double precision)
                / nullif(acct_txn_count_prior_30d / 30.0, 0)                as acct_velocity_ratio_30d,
            case when n_prior > 0 then sum_log_prior / n_prior end          as prior_mean_log,
            case when n_prior > 1 then sqrt(greatest(
                (sumsq_log_prior - sum_log_prior * sum_log_prior / n_prior) / (n_prior - 1), 0)) end
                                                                            as prior_std_log
        from acct_hist
    ) as s

),

-- ---------------------------------------------------------------- account x category history
acct_cat_hist as (

    select
        account,
        category_key,
        txn_date,
        coalesce(sum(n) over w_prior, 0)                                    as n_prior,
        sum(sum_abs) over w_prior                                           as sum_abs_prior,
        sum(sumsq_abs) over w_prior                                         as sumsq_abs_prior,
        array[
            {%- for i in range(1, n_bins + 1) %}
            cast(coalesce(sum(le_{{ i }}) over w_prior, 0) as integer){{ "," if not loop.last }}
            {%- endfor %}
        ]                                                                   as le_prior,
        sum(n) over w_30d                                                   as acct_cat_txn_count_30d,
        cast(sum(sum_expense) over w_30d as double precision)               as acct_cat_expense_sum_30d
    from acct_cat_day
    window
        w_prior as (partition by account, category_key order by txn_date rows between unbounded preceding and 1 preceding),
        w_30d as (partition by account, category_key order by txn_date range between interval '29 days' preceding and current row)

),

acct_cat_stats as (

    select s.*, {{ median_from_bin }} as prior_median_abs
    from (select acct_cat_hist.*, {{ prior_stats }} from acct_cat_hist) as s

),

-- ---------------------------------------------------------------- category history (all accounts)
cat_day as (

    select
        category_key,
        txn_date,
        cast(sum(n) as integer)                                             as n,
        sum(sum_abs)                                                        as sum_abs,
        sum(sumsq_abs)                                                      as sumsq_abs,
        {%- for i in range(1, n_bins + 1) %}
        cast(sum(le_{{ i }}) as integer)                                    as le_{{ i }}{{ "," if not loop.last }}
        {%- endfor %}
    from acct_cat_day
    group by category_key, txn_date

),

cat_hist as (

    select
        category_key,
        txn_date,
        coalesce(sum(n) over w_prior, 0)                                    as n_prior,
        sum(sum_abs) over w_prior                                           as sum_abs_prior,
        sum(sumsq_abs) over w_prior                                         as sumsq_abs_prior,
        array[
            {%- for i in range(1, n_bins + 1) %}
            cast(coalesce(sum(le_{{ i }}) over w_prior, 0) as integer){{ "," if not loop.last }}
            {%- endfor %}
        ]                                                                   as le_prior
    from cat_day
    window w_prior as (partition by category_key order by txn_date rows between unbounded preceding and 1 preceding)

),

cat_stats as (

    select cat_hist.*, {{ prior_stats }}
    from cat_hist

),

-- ---------------------------------------------------------------- account x payment method history
acct_pm_hist as (

    select
        account,
        payment_method_key,
        txn_date,
        coalesce(sum(n) over (
            partition by account, payment_method_key order by txn_date
            rows between unbounded preceding and 1 preceding
        ), 0)                                                               as payment_method_prior_count
    from acct_pm_day

),

-- ---------------------------------------------------------------- one row per transaction
joined as (

    select
        t.*,
        a.acct_txn_count_same_day,
        a.n_prior                                                           as acct_n_prior,
        a.n_expense_prior                                                   as acct_n_expense_prior,
        a.acct_prior_distinct_merchants,
        a.prev_date                                                         as acct_prev_date,
        a.max_abs_prior                                                     as acct_max_abs_prior,
        a.prior_mean_abs                                                    as acct_mean,
        a.prior_std_abs                                                     as acct_std,
        a.prior_mean_log                                                    as acct_mean_log,
        a.prior_std_log                                                     as acct_std_log,
        a.le_prior                                                          as acct_le,
        {%- for days in [7, 14, 30] %}
        a.acct_txn_count_{{ days }}d,
        a.acct_amount_sum_{{ days }}d,
        a.acct_amount_mean_{{ days }}d,
        a.acct_expense_count_{{ days }}d,
        a.acct_expense_sum_{{ days }}d,
        a.acct_expense_mean_{{ days }}d,
        {%- endfor %}
        a.acct_active_days_30d,
        a.acct_velocity_ratio_30d,
        a.prior_median_abs                                                  as acct_median,
        ac.n_prior                                                          as acct_cat_n_prior,
        ac.prior_mean_abs                                                   as acct_cat_mean,
        ac.prior_std_abs                                                    as acct_cat_std,
        ac.le_prior                                                         as acct_cat_le,
        ac.acct_cat_txn_count_30d,
        ac.acct_cat_expense_sum_30d,
        ac.prior_median_abs                                                 as acct_cat_median,
        c.n_prior                                                           as cat_n_prior,
        c.prior_mean_abs                                                    as cat_mean,
        c.prior_std_abs                                                     as cat_std,
        c.le_prior                                                          as cat_le,
        pm.payment_method_prior_count,
        m.merchant_txn_count_same_day,
        m.merchant_prior_count,
        m.is_first_time_merchant,
        m.merchant_days_since_prev,
        m.merchant_count_prior_30d,
        m.merchant_count_prior_90d,
        m.merchant_mean_gap_days,
        m.merchant_prior_mean_abs,
        m.merchant_prior_std_abs,
        s.n                                                                 as same_charge_count_same_day
    from binned as t
    inner join acct_stats as a
        on t.account = a.account and t.txn_date = a.txn_date
    inner join acct_cat_stats as ac
        on t.account = ac.account and t.category_key = ac.category_key and t.txn_date = ac.txn_date
    inner join cat_stats as c
        on t.category_key = c.category_key and t.txn_date = c.txn_date
    inner join acct_pm_hist as pm
        on t.account = pm.account and t.payment_method_key = pm.payment_method_key and t.txn_date = pm.txn_date
    inner join same_charge_day as s
        on t.account = s.account and t.txn_date = s.txn_date and t.amount = s.amount
        and coalesce(t.merchant, lower(t.description)) = s.charge_key
    left join acct_merchant_stats as m
        on t.account = m.account and t.merchant = m.merchant and t.txn_date = m.txn_date

)

{#- Percentile position of the row's amount inside a prior histogram `le` with `n` prior rows. -#}
{%- set pctl -%}
    case when N > 0 then
        (coalesce(LE[amount_bin - 1], 0) + amount_bin_frac * (LE[amount_bin] - coalesce(LE[amount_bin - 1], 0)))
        / cast(N as double precision)
    end
{%- endset %}

select
    -- identifying / label columns
    j.transaction_id,
    j.txn_date,
    j.account,
    j.source_file,
    j.line_number,
    j.txn_type,
    j.description,
    j.reference,
    j.merchant,
    j.payment_method,
    j.category,
    j.amount,

    -- time (a function of txn_date only)
    cal.day_of_week,
    cal.day_of_month,
    cal.month,
    cal.quarter,
    cal.day_of_year,
    cal.week_of_year,
    cal.week_of_month,
    cal.days_in_month,
    cal.dow_sin,
    cal.dow_cos,
    cal.dom_sin,
    cal.dom_cos,
    cal.month_sin,
    cal.month_cos,
    cal.doy_sin,
    cal.doy_cos,
    cal.is_weekend,
    cal.is_holiday,
    cal.is_business_day,
    cal.is_month_start,
    cal.is_month_end,
    cal.is_quarter_start,
    cal.is_quarter_end,
    cal.is_payday,
    cal.days_since_payday,
    cal.days_until_payday,
    cal.days_to_month_end,

    -- amount: the row itself
    j.abs_f                                                                 as abs_amount,
    j.log_abs_amount,
    cast(sign(j.amount) as integer)                                         as amount_sign,
    j.is_expense,
    case when j.abs_cents % 1000 = 0 then 1 else 0 end                      as is_round_10,
    case when j.abs_cents % 10000 = 0 then 1 else 0 end                     as is_round_100,
    case when j.abs_cents % 100 <> 0 then 1 else 0 end                      as has_cents,
    cast(j.abs_cents % 100 as integer)                                      as amount_cents,

    -- amount: relative to the past (strictly earlier days)
    j.acct_mean                                                             as acct_prior_mean_abs_amount,
    j.acct_std                                                              as acct_prior_std_abs_amount,
    j.acct_median                                                           as acct_prior_median_abs_amount,
    (j.abs_f - j.acct_mean) / nullif(j.acct_std, 0)                         as acct_amount_zscore,
    (j.log_abs_amount - j.acct_mean_log) / nullif(j.acct_std_log, 0)        as acct_log_amount_zscore,
    j.abs_f / nullif(j.acct_median, 0)                                      as acct_amount_to_median_ratio,
    j.abs_f / nullif(j.acct_max_abs_prior, 0)                               as acct_amount_to_prior_max_ratio,
    {{ pctl | replace('LE', 'j.acct_le') | replace('N', 'j.acct_n_prior') }}
                                                                            as acct_amount_pctl,
    j.acct_cat_mean                                                         as acct_cat_prior_mean_abs_amount,
    j.acct_cat_std                                                          as acct_cat_prior_std_abs_amount,
    j.acct_cat_median                                                       as acct_cat_prior_median_abs_amount,
    (j.abs_f - j.acct_cat_mean) / nullif(j.acct_cat_std, 0)                 as acct_cat_amount_zscore,
    j.abs_f / nullif(j.acct_cat_median, 0)                                  as acct_cat_amount_to_median_ratio,
    {{ pctl | replace('LE', 'j.acct_cat_le') | replace('N', 'j.acct_cat_n_prior') }}
                                                                            as acct_cat_amount_pctl,
    (j.abs_f - j.cat_mean) / nullif(j.cat_std, 0)                           as cat_amount_zscore,
    {{ pctl | replace('LE', 'j.cat_le') | replace('N', 'j.cat_n_prior') }}
                                                                            as cat_amount_pctl,
    j.merchant_prior_mean_abs                                               as merchant_prior_mean_abs_amount,
    (j.abs_f - j.merchant_prior_mean_abs) / nullif(j.merchant_prior_std_abs, 0)
                                                                            as merchant_amount_zscore,
    j.abs_f / nullif(j.merchant_prior_mean_abs, 0)                          as merchant_amount_to_mean_ratio,

    -- categorical: point-in-time frequency encodings (strictly earlier days of the account)
    j.acct_n_prior                                                          as acct_prior_txn_count,
    cast(j.acct_n_expense_prior as double precision) / nullif(j.acct_n_prior, 0)
                                                                            as acct_prior_expense_share,
    j.acct_prior_distinct_merchants,
    j.acct_cat_n_prior                                                      as category_prior_count,
    cast(j.acct_cat_n_prior as double precision) / nullif(j.acct_n_prior, 0)
                                                                            as category_prior_share,
    case when j.acct_cat_n_prior = 0 then 1 else 0 end                      as is_first_time_category,
    j.cat_n_prior                                                           as category_prior_count_all_accounts,
    j.payment_method_prior_count,
    cast(j.payment_method_prior_count as double precision) / nullif(j.acct_n_prior, 0)
                                                                            as payment_method_prior_share,
    case when j.payment_method_prior_count = 0 then 1 else 0 end            as is_first_time_payment_method,
    j.merchant_prior_count,
    cast(j.merchant_prior_count as double precision) / nullif(j.acct_n_prior, 0)
                                                                            as merchant_prior_share,
    j.is_first_time_merchant,

    -- behavioral: account windows of N calendar days ending at txn_date (the day included)
    {%- for days in [7, 14, 30] %}
    j.acct_txn_count_{{ days }}d,
    j.acct_amount_sum_{{ days }}d,
    j.acct_amount_mean_{{ days }}d,
    j.acct_expense_count_{{ days }}d,
    j.acct_expense_sum_{{ days }}d,
    j.acct_expense_mean_{{ days }}d,
    {%- endfor %}
    j.acct_active_days_30d,
    j.acct_cat_txn_count_30d,
    j.acct_cat_expense_sum_30d,
    j.txn_date - j.acct_prev_date                                           as acct_days_since_prev_txn,
    -- velocity
    j.acct_txn_count_same_day,
    j.acct_velocity_ratio_30d,
    j.merchant_txn_count_same_day,
    j.same_charge_count_same_day,
    -- merchant recurrence (the account's earlier days with this merchant)
    j.merchant_days_since_prev,
    j.merchant_count_prior_30d,
    j.merchant_count_prior_90d,
    j.merchant_mean_gap_days,
    (j.merchant_days_since_prev / nullif(j.merchant_mean_gap_days, 0))      as merchant_gap_ratio

from joined as j
inner join {{ ref('ml_calendar_features') }} as cal
    on j.txn_date = cal.calendar_date
