-- Invariants of ml_transaction_features, checked in one scan: one row per violating transaction
-- with the first problem found. Tolerance 1e-9 on ratios (floating point). Replaces ~70 not_null
-- tests (each a scan of the whole table) with one scan.
{%- set never_null = [
    'txn_date', 'account', 'amount', 'day_of_week', 'day_of_month', 'month', 'quarter',
    'day_of_year', 'week_of_year', 'week_of_month', 'days_in_month', 'dow_sin', 'dow_cos',
    'dom_sin', 'dom_cos', 'month_sin', 'month_cos', 'doy_sin', 'doy_cos', 'is_weekend',
    'is_holiday', 'is_business_day', 'is_month_start', 'is_month_end', 'is_quarter_start',
    'is_quarter_end', 'is_payday', 'days_since_payday', 'days_until_payday', 'days_to_month_end',
    'abs_amount', 'log_abs_amount', 'amount_sign', 'is_expense', 'is_round_10', 'is_round_100',
    'has_cents', 'amount_cents', 'acct_prior_txn_count', 'acct_prior_distinct_merchants',
    'category_prior_count', 'is_first_time_category', 'category_prior_count_all_accounts',
    'payment_method_prior_count', 'is_first_time_payment_method', 'acct_txn_count_7d',
    'acct_amount_sum_7d', 'acct_amount_mean_7d', 'acct_expense_count_7d', 'acct_expense_sum_7d',
    'acct_txn_count_14d', 'acct_amount_sum_14d', 'acct_amount_mean_14d', 'acct_expense_count_14d',
    'acct_expense_sum_14d', 'acct_txn_count_30d', 'acct_amount_sum_30d', 'acct_amount_mean_30d',
    'acct_expense_count_30d', 'acct_expense_sum_30d', 'acct_active_days_30d', 'acct_cat_txn_count_30d',
    'acct_cat_expense_sum_30d', 'acct_txn_count_same_day', 'same_charge_count_same_day',
] %}
{%- set flags = [
    'is_weekend', 'is_holiday', 'is_business_day', 'is_month_start', 'is_month_end',
    'is_quarter_start', 'is_quarter_end', 'is_payday', 'is_expense', 'is_round_10',
    'is_round_100', 'has_cents', 'is_first_time_category', 'is_first_time_payment_method',
] %}
{%- set unit_interval = [
    'acct_amount_pctl', 'acct_cat_amount_pctl', 'cat_amount_pctl', 'acct_prior_expense_share',
    'category_prior_share', 'payment_method_prior_share', 'merchant_prior_share',
] %}
{%- set unit_circle = ['dow_sin', 'dow_cos', 'dom_sin', 'dom_cos', 'month_sin', 'month_cos', 'doy_sin', 'doy_cos'] %}
with checked as (

    select
        transaction_id,
        case
            {%- for c in never_null %}
            when {{ c }} is null then '{{ c }} is null'
            {%- endfor %}
            {%- for c in flags %}
            when {{ c }} not in (0, 1) then '{{ c }} is not 0/1'
            {%- endfor %}
            when is_first_time_merchant not in (0, 1) then 'is_first_time_merchant is not 0/1'
            {%- for c in unit_interval %}
            when {{ c }} < -1e-9 or {{ c }} > 1 + 1e-9 then '{{ c }} outside 0..1'
            {%- endfor %}
            {%- for c in unit_circle %}
            when abs({{ c }}) > 1 + 1e-9 then '{{ c }} outside -1..1'
            {%- endfor %}
            when day_of_week not between 0 and 6 then 'day_of_week outside 0..6'
            when abs(abs_amount - abs(amount)) > 0.005 then 'abs_amount differs from abs(amount)'
            when amount_sign <> sign(amount) then 'amount_sign differs from sign(amount)'
            when amount_cents not between 0 and 99 then 'amount_cents outside 0..99'
            -- history: counts, and nulls exactly where there is none
            when acct_prior_txn_count < 0 then 'acct_prior_txn_count negative'
            when category_prior_count > acct_prior_txn_count then 'category_prior_count above acct_prior_txn_count'
            when payment_method_prior_count > acct_prior_txn_count then 'payment_method_prior_count above acct_prior_txn_count'
            when merchant_prior_count > acct_prior_txn_count then 'merchant_prior_count above acct_prior_txn_count'
            when (acct_prior_mean_abs_amount is null) <> (acct_prior_txn_count = 0) then 'acct_prior_mean_abs_amount null iff no history: violated'
            when (acct_prior_median_abs_amount is null) <> (acct_prior_txn_count = 0) then 'acct_prior_median_abs_amount null iff no history: violated'
            when (acct_amount_pctl is null) <> (acct_prior_txn_count = 0) then 'acct_amount_pctl null iff no history: violated'
            when (is_first_time_category = 1) <> (category_prior_count = 0) then 'is_first_time_category disagrees with category_prior_count'
            when merchant is not null and (is_first_time_merchant = 1) <> (merchant_prior_count = 0) then 'is_first_time_merchant disagrees with merchant_prior_count'
            when merchant is not null and (merchant_days_since_prev is null) <> (merchant_prior_count = 0) then 'merchant_days_since_prev null iff first time: violated'
            when merchant_days_since_prev < 1 or acct_days_since_prev_txn < 1 then 'days since a previous day below 1'
            when merchant_count_prior_30d > merchant_count_prior_90d or merchant_count_prior_90d > merchant_prior_count then 'merchant_count_prior_30d <= _90d <= merchant_prior_count violated'
            -- windows contain the row's own day, and shorter windows lie within longer ones
            when acct_txn_count_same_day < 1 then 'acct_txn_count_same_day below 1'
            when same_charge_count_same_day not between 1 and acct_txn_count_same_day then 'same_charge_count_same_day outside 1..acct_txn_count_same_day'
            when merchant_txn_count_same_day not between 1 and acct_txn_count_same_day then 'merchant_txn_count_same_day outside 1..acct_txn_count_same_day'
            when not (acct_txn_count_same_day <= acct_txn_count_7d and acct_txn_count_7d <= acct_txn_count_14d
                      and acct_txn_count_14d <= acct_txn_count_30d) then 'window counts not nested (same day <= 7d <= 14d <= 30d)'
            when not (acct_expense_count_7d <= acct_expense_count_14d and acct_expense_count_14d <= acct_expense_count_30d
                      and acct_expense_count_30d <= acct_txn_count_30d) then 'expense window counts not nested'
            when acct_expense_sum_7d < 0 or acct_expense_sum_7d > acct_expense_sum_30d + 0.005 then 'acct_expense_sum_7d outside 0..acct_expense_sum_30d'
            when acct_active_days_30d not between 1 and 30 then 'acct_active_days_30d outside 1..30'
            when acct_cat_txn_count_30d not between 1 and acct_txn_count_30d then 'acct_cat_txn_count_30d outside 1..acct_txn_count_30d'
        end as problem
    from {{ ref('ml_transaction_features') }}

)

select transaction_id, problem
from checked
where problem is not null
