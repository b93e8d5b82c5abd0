-- One row per fct_transactions row that is not a transfer between the user's own accounts
-- (is_transfer): identifying/label columns plus engineered features for the ML models, grouped
-- time / amount / categorical / behavioral (documented in _features.yml).
--
-- POINT IN TIME. A row's features use only transactions dated on or before its txn_date (there is no
-- time of day, so the whole day counts as "now"): nothing here looks at a later date, and no
-- aggregate spans a whole partition. Two kinds of history:
--   prior     : strictly earlier days ("what was known when the day began"), so the row's own amount
--               and labels never enter its own baselines (z-scores, shares, first-time flags);
--   windows   : N calendar days ending at and including txn_date (7d = txn_date-6 .. txn_date), and
--               same-day counts (velocity, duplicates); rows of the same day see each other.
-- Every row of a day therefore gets the same history, whatever the order of rows inside the day.
--
-- HOW. Transactions are aggregated per day (account; account x category; category; account x
-- merchant; account x payment method), windows run over those daily rows (ROWS ... 1 PRECEDING for
-- the expanding past, RANGE INTERVAL 'N days' frames for calendar windows), and each transaction
-- joins its day back. No self-joins.
--
-- Medians and percentile positions are approximate: each day carries a histogram of abs(amount) on
-- a log scale (6 bins per decade from 1 cent to 1M: a bin spans a factor 10^(1/6) = 1.47),
-- cumulated over the past; values are interpolated linearly (in log space) inside a bin.
--
-- PLANNING (1M rows: ~35 s on 2 cores; each point below cost minutes or tens of seconds without it).
-- The daily aggregates are CTEs without statistics: with several equality conditions per join,
-- PostgreSQL multiplies default selectivities down to an estimate of 1 row, then hashes the 1M-row
-- side, or picks nested loops or a merge join on `account` alone. So every join has one text key
-- (the row of key columns cast to text: unambiguous), and the pre-hook (SET LOCAL: this model's
-- transaction only) leaves hash joins only. The per-day statistics are MATERIALIZED CTEs so their
-- expressions run once per day, not once per joined transaction row.
-- ANALYSIS ONLY (tag `analysis`, Dagster group `analysis`): no model or check of the pipeline reads this
-- table (the models read marts.fct_transactions and compute their features in lib/ml/features.py),
-- so it is built on demand (`titans materialize --select 'group:analysis'`), never on every change.
{{ config(tags=["analysis"], pre_hook=[
    "set local work_mem = '256MB'",
    "set local enable_nestloop = off",
    "set local enable_mergejoin = off",
]) }}

{%- set bins_per_decade = 6 %}
{%- set min_log10 = -2 %}
{%- set n_bins = 8 * bins_per_decade %}

{#- Position of abs(amount) on the histogram scale: in [0, n_bins) inside the covered range; then
    the bin (1..n_bins, out-of-range amounts in the end bins) and the position inside it (0..1),
    from a column `bin_pos`. -#}
{%- set bin_pos -%}
    case when amount <> 0 then
        (log(cast(abs(amount) as double precision)) - ({{ min_log10 }})) * {{ bins_per_decade }}
    end
{%- endset %}
{%- set amount_bin -%}
    case
        when bin_pos is null or bin_pos < 0 then 1
        when bin_pos >= {{ n_bins }} then {{ n_bins }}
        else cast(floor(bin_pos) as integer) + 1
    end
{%- endset %}
{%- set amount_bin_frac -%}
    case
        when bin_pos is null or bin_pos < 0 then cast(0 as double precision)
        when bin_pos >= {{ n_bins }} then cast(1 as double precision)
        else bin_pos - floor(bin_pos)
    end
{%- endset %}
{%- set charge_key = "coalesce(merchant, lower(description))" %}

{#- Prior-history statistics of abs(amount) for one aggregation level, from the columns n_prior,
    sum_abs_prior, sumsq_abs_prior and le_prior (le_prior[i] = prior rows in bins 1..i). -#}
{%- set prior_stats -%}
        cast(case when n_prior > 0 then sum_abs_prior / n_prior end as double precision)
                                                                            as prior_mean_abs,
        cast(case when n_prior > 1 then sqrt(greatest(
            (sumsq_abs_prior - sum_abs_prior * sum_abs_prior / n_prior) / (n_prior - 1), 0)) end
            as double precision)                                            as prior_std_abs,
        case when n_prior > 0 then case
            {%- for i in range(1, n_bins + 1) %}
            when le_prior[{{ i }}] * 2 >= n_prior then {{ i }}
            {%- endfor %}
        end end                                                             as median_bin
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

{#- The prior rows' histogram, one array per day (window w_prior). -#}
{%- set le_prior_array -%}
        array[
            {%- for i in range(1, n_bins + 1) %}
            cast(coalesce(sum(le_{{ i }}) over w_prior, 0) as integer){{ "," if not loop.last }}
            {%- endfor %}
        ]
{%- endset %}

{#- Percentile position of the row's amount among `N` prior rows with histogram `LE`. -#}
{%- set pctl -%}
    case when N > 0 then
        (coalesce(LE[r.amount_bin - 1], 0) + r.amount_bin_frac * (LE[r.amount_bin] - coalesce(LE[r.amount_bin - 1], 0)))
        / cast(N as double precision)
    end
{%- endset %}

with txns as (

    -- the narrow input of the daily aggregates
    select
        account,
        txn_date,
        coalesce(category, '')                                              as category_key,
        coalesce(payment_method, '')                                        as payment_method_key,
        merchant,
        {{ charge_key }}                                                    as charge_key,
        amount,
        abs(amount)                                                         as abs_amount,
        case when txn_type = 'Expense' then 1 else 0 end                    as is_expense,
        case when txn_type = 'Expense' then -amount else 0 end              as expense_amount,
        ln(1 + cast(abs(amount) as double precision))                       as log_abs_amount,
        {{ amount_bin }}                                                    as amount_bin
    from (
        select fct.*, {{ bin_pos }} as bin_pos
        from {{ ref('fct_transactions') }} as fct
        where not fct.is_transfer  -- moves between the user's own accounts: not spending, not training data
        offset 0  -- computed once per row, not once per reference
    ) as t

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
    from txns
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
    from txns
    where merchant is not null
    group by account, merchant, txn_date

),

-- identical charges: same account, day, amount and counterparty
same_charge_day as materialized (

    select
        cast(row(account, txn_date, amount, charge_key) as text)            as join_key,
        cast(count(*) as integer)                                           as same_charge_count_same_day
    from txns
    group by account, txn_date, amount, charge_key

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

acct_merchant_stats as materialized (

    select
        cast(row(account, merchant, txn_date) as text)                      as join_key,
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
        {{ le_prior_array }}                                                as le_prior,
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

acct_stats as materialized (

    select
        cast(row(account, txn_date) as text)                                as join_key,
        s.*,
        {{ median_from_bin }}                                               as prior_median_abs
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
        {{ le_prior_array }}                                                as le_prior,
        sum(n) over w_30d                                                   as acct_cat_txn_count_30d,
        cast(sum(sum_expense) over w_30d as double precision)               as acct_cat_expense_sum_30d
    from acct_cat_day
    window
        w_prior as (partition by account, category_key order by txn_date rows between unbounded preceding and 1 preceding),
        w_30d as (partition by account, category_key order by txn_date range between interval '29 days' preceding and current row)

),

acct_cat_stats as materialized (

    select
        cast(row(account, category_key, txn_date) as text)                  as join_key,
        s.*,
        {{ median_from_bin }}                                               as prior_median_abs
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

cat_stats as materialized (

    select cast(row(category_key, txn_date) as text) as join_key, s.*
    from (
        select h.*, {{ prior_stats }}
        from (
            select
                category_key,
                txn_date,
                coalesce(sum(n) over w_prior, 0)                            as n_prior,
                sum(sum_abs) over w_prior                                   as sum_abs_prior,
                sum(sumsq_abs) over w_prior                                 as sumsq_abs_prior,
                {{ le_prior_array }}                                        as le_prior
            from cat_day
            window w_prior as (partition by category_key order by txn_date rows between unbounded preceding and 1 preceding)
        ) as h
    ) as s

),

-- ---------------------------------------------------------------- account x payment method history
acct_pm_stats as materialized (

    select
        cast(row(account, payment_method_key, txn_date) as text)            as join_key,
        coalesce(sum(n) over (
            partition by account, payment_method_key order by txn_date
            rows between unbounded preceding and 1 preceding
        ), 0)                                                               as payment_method_prior_count
    from (
        select account, payment_method_key, txn_date, cast(count(*) as integer) as n
        from txns
        group by account, payment_method_key, txn_date
    ) as d

),

-- ---------------------------------------------------------------- one row per transaction
-- (OFFSET 0 keeps PostgreSQL from pulling these subqueries up into the final select, where each
-- derived column would be computed again at every reference.)
rows_ as (

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
        cast(abs(amount) as double precision)                               as abs_f,
        cast(round(abs(amount) * 100) as bigint)                            as abs_cents,
        ln(1 + cast(abs(amount) as double precision))                       as log_abs_amount,
        case when txn_type = 'Expense' then 1 else 0 end                    as is_expense,
        {{ amount_bin }}                                                    as amount_bin,
        {{ amount_bin_frac }}                                               as amount_bin_frac,
        cast(row(account, txn_date) as text)                                as acct_key,
        cast(row(account, coalesce(category, ''), txn_date) as text)        as acct_cat_key,
        cast(row(coalesce(category, ''), txn_date) as text)                 as cat_key,
        cast(row(account, coalesce(payment_method, ''), txn_date) as text)  as acct_pm_key,
        case when merchant is not null then
            cast(row(account, merchant, txn_date) as text)
        end                                                                 as acct_merchant_key,
        cast(row(account, txn_date, amount, {{ charge_key }}) as text)      as charge_key
    from (
        select fct.*, {{ bin_pos }} as bin_pos
        from {{ ref('fct_transactions') }} as fct
        where not fct.is_transfer  -- moves between the user's own accounts: not spending, not training data
        offset 0
    ) as t
    offset 0

)

select
    -- identifying / label columns
    r.transaction_id,
    r.txn_date,
    r.account,
    r.source_file,
    r.line_number,
    r.txn_type,
    r.description,
    r.reference,
    r.merchant,
    r.payment_method,
    r.category,
    r.amount,

    -- time (a function of txn_date only, see ml_calendar_features)
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
    r.abs_f                                                                 as abs_amount,
    r.log_abs_amount,
    cast(sign(r.amount) as integer)                                         as amount_sign,
    r.is_expense,
    case when r.abs_cents % 1000 = 0 then 1 else 0 end                      as is_round_10,
    case when r.abs_cents % 10000 = 0 then 1 else 0 end                     as is_round_100,
    case when r.abs_cents % 100 <> 0 then 1 else 0 end                      as has_cents,
    cast(r.abs_cents % 100 as integer)                                      as amount_cents,

    -- amount: relative to the past (strictly earlier days)
    a.prior_mean_abs                                                        as acct_prior_mean_abs_amount,
    a.prior_std_abs                                                         as acct_prior_std_abs_amount,
    a.prior_median_abs                                                      as acct_prior_median_abs_amount,
    (r.abs_f - a.prior_mean_abs) / nullif(a.prior_std_abs, 0)               as acct_amount_zscore,
    (r.log_abs_amount - a.prior_mean_log) / nullif(a.prior_std_log, 0)      as acct_log_amount_zscore,
    r.abs_f / nullif(a.prior_median_abs, 0)                                 as acct_amount_to_median_ratio,
    r.abs_f / nullif(a.max_abs_prior, 0)                                    as acct_amount_to_prior_max_ratio,
    {{ pctl | replace('LE', 'a.le_prior') | replace('N', 'a.n_prior') }}    as acct_amount_pctl,
    ac.prior_mean_abs                                                       as acct_cat_prior_mean_abs_amount,
    ac.prior_std_abs                                                        as acct_cat_prior_std_abs_amount,
    ac.prior_median_abs                                                     as acct_cat_prior_median_abs_amount,
    (r.abs_f - ac.prior_mean_abs) / nullif(ac.prior_std_abs, 0)             as acct_cat_amount_zscore,
    r.abs_f / nullif(ac.prior_median_abs, 0)                                as acct_cat_amount_to_median_ratio,
    {{ pctl | replace('LE', 'ac.le_prior') | replace('N', 'ac.n_prior') }}  as acct_cat_amount_pctl,
    (r.abs_f - c.prior_mean_abs) / nullif(c.prior_std_abs, 0)               as cat_amount_zscore,
    {{ pctl | replace('LE', 'c.le_prior') | replace('N', 'c.n_prior') }}    as cat_amount_pctl,
    m.merchant_prior_mean_abs                                               as merchant_prior_mean_abs_amount,
    (r.abs_f - m.merchant_prior_mean_abs) / nullif(m.merchant_prior_std_abs, 0)
                                                                            as merchant_amount_zscore,
    r.abs_f / nullif(m.merchant_prior_mean_abs, 0)                          as merchant_amount_to_mean_ratio,

    -- categorical: point-in-time frequency encodings (the account's strictly earlier days)
    a.n_prior                                                               as acct_prior_txn_count,
    cast(a.n_expense_prior as double precision) / nullif(a.n_prior, 0)      as acct_prior_expense_share,
    a.acct_prior_distinct_merchants,
    ac.n_prior                                                              as category_prior_count,
    cast(ac.n_prior as double precision) / nullif(a.n_prior, 0)             as category_prior_share,
    case when ac.n_prior = 0 then 1 else 0 end                              as is_first_time_category,
    c.n_prior                                                               as category_prior_count_all_accounts,
    pm.payment_method_prior_count,
    cast(pm.payment_method_prior_count as double precision) / nullif(a.n_prior, 0)
                                                                            as payment_method_prior_share,
    case when pm.payment_method_prior_count = 0 then 1 else 0 end           as is_first_time_payment_method,
    m.merchant_prior_count,
    cast(m.merchant_prior_count as double precision) / nullif(a.n_prior, 0) as merchant_prior_share,
    m.is_first_time_merchant,

    -- behavioral: the account's windows of N calendar days ending at txn_date (the day included)
    {%- for days in [7, 14, 30] %}
    a.acct_txn_count_{{ days }}d,
    a.acct_amount_sum_{{ days }}d,
    a.acct_amount_mean_{{ days }}d,
    a.acct_expense_count_{{ days }}d,
    a.acct_expense_sum_{{ days }}d,
    a.acct_expense_mean_{{ days }}d,
    {%- endfor %}
    a.acct_active_days_30d,
    ac.acct_cat_txn_count_30d,
    ac.acct_cat_expense_sum_30d,
    r.txn_date - a.prev_date                                                as acct_days_since_prev_txn,
    -- velocity
    a.acct_txn_count_same_day,
    a.acct_velocity_ratio_30d,
    m.merchant_txn_count_same_day,
    s.same_charge_count_same_day,
    -- merchant recurrence (the account's earlier days with this merchant)
    m.merchant_days_since_prev,
    m.merchant_count_prior_30d,
    m.merchant_count_prior_90d,
    m.merchant_mean_gap_days,
    m.merchant_days_since_prev / nullif(m.merchant_mean_gap_days, 0)        as merchant_gap_ratio

from rows_ as r
inner join {{ ref('ml_calendar_features') }} as cal
    on r.txn_date = cal.calendar_date
inner join acct_stats as a
    on r.acct_key = a.join_key
inner join acct_cat_stats as ac
    on r.acct_cat_key = ac.join_key
inner join cat_stats as c
    on r.cat_key = c.join_key
inner join acct_pm_stats as pm
    on r.acct_pm_key = pm.join_key
inner join same_charge_day as s
    on r.charge_key = s.join_key
left join acct_merchant_stats as m
    on r.acct_merchant_key = m.join_key
