-- One row per real transaction (deduplicated across overlapping exports), clean and typed.
-- is_transfer: one side of a move between the user's own accounts (int_transfer_pairs), counted in
-- no income, expense or training data; transfer_unpaired: the text reads like such a move (a card
-- payment, a move to savings) but its other side is not among the loaded accounts: flagged, not guessed.
-- amount_reporting: the amount in TITANS_REPORTING_CURRENCY (default USD) at int_fx_daily_rates'
-- rate of the day; a row without currency is taken to be in it; null when no rate covers the day
-- (assert_fx_rates_cover_every_currency fails then, naming the currency and the first such day).
{%- set reporting = env_var('TITANS_REPORTING_CURRENCY', 'USD') | upper %}
-- Incremental (macros/incremental.sql): a run replaces the rows int_transaction_changes names.
-- The indexes let the blocking GX check read only those rows and the newest day (lib/quality.py).
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    indexes=[{'columns': ['transaction_id']}, {'columns': ['txn_date']}, {'columns': ['bank_txn_id']}],
    pre_hook=["{{ delete_slice('t.transaction_id in (select transaction_id from ' ~ ref('int_transaction_changes') ~ ')') }}"],
) }}
with txns as (

    select * from {{ ref('int_transactions_deduped') }}
    {%- if is_incremental() %}
    where transaction_id in (select transaction_id from {{ ref('int_transaction_changes') }})
    {%- endif %}

),

pair_sides as (

    select out_transaction_id as transaction_id, transfer_pair_id, in_account as transfer_account
    from {{ ref('int_transfer_pairs') }}
    union all
    select in_transaction_id, transfer_pair_id, out_account
    from {{ ref('int_transfer_pairs') }}

)

select
    txns.transaction_id,
    txns.account,
    txns.source_file,
    txns.line_number,
    txns.txn_date,
    txns.txn_type,
    txns.description,
    txns.amount,
    abs(txns.amount)                                                 as abs_amount,
    case when txns.txn_type = 'Expense' then txns.category end       as category,
    case when txns.txn_type = 'Expense' then txns.category_raw end   as category_raw,
    txns.payment_method,
    txns.status,
    txns.reference,
    txns.merchant,
    txns.receipt_url,
    txns.currency,
    '{{ reporting }}'                                                as reporting_currency,
    case when coalesce(upper(txns.currency), '{{ reporting }}') = '{{ reporting }}' then txns.amount
         else cast(round(txns.amount * fx.rate, 2) as numeric(14, 2)) end as amount_reporting,
    txns.bank_txn_id,
    cast({{ dbt.date_trunc('month', 'txns.txn_date') }} as date)     as month,
    txns.loaded_at,
    pair_sides.transaction_id is not null                            as is_transfer,
    pair_sides.transfer_pair_id,
    pair_sides.transfer_account,
    pair_sides.transaction_id is null and coalesce(hints.strong_hint, false)
        and txns.transaction_id not in (
            select transaction_id from app.transfer_overrides
            where action = 'break' and other_transaction_id = ''
        )                                                            as transfer_unpaired
from txns
left join pair_sides on pair_sides.transaction_id = txns.transaction_id
left join {{ ref('int_transfer_hints') }} as hints on hints.transaction_id = txns.transaction_id
left join {{ ref('int_fx_daily_rates') }} as fx
    on fx.currency = upper(txns.currency) and fx.rate_date = txns.txn_date
