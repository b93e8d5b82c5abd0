-- One row per real transaction: overlapping exports of the same account collapse to one row, while
-- genuine identical transactions inside one file (two coffees, a duplicate charge) are all kept.
--
-- occurrence  = the n-th identical record inside ONE file:
--               row_number() over (partition by source_file, account, txn_date, amount,
--                                  description_key, reference_key order by line_number)
-- natural key = (account, txn_date, amount, description_key, reference_key, occurrence)
--               description_key = lower(trim(description)), reference_key = coalesce(lower(trim(reference)), '')
-- bank key    = (account, bank_txn_id) when the bank gave its own transaction id (OFX FITID, CAMT
--               AcctSvcrRef/NtryRef, MT940 reference): the first key, so two overlapping statements
--               of one account count each shared transaction once whatever else differs; rows
--               without an id fall back to the natural key (occurrence is 1 on keyed rows).
-- mixed       = one account exported with ids (OFX, CAMT, MT940) and without (a CSV, a QIF) over the
--               same days: the same transaction is written differently in each format, so no key
--               above matches. On each (account, txn_date, amount), the first k id-less records of
--               each file (by line) are taken to be the k transactions the bank identified on that
--               day for that amount, and dropped; id-less records beyond k are kept. A day and
--               amount the keyed statements do not cover is never touched.
-- A record seen in several files keeps the copy from the most recently loaded file
-- (ties: greater source_file, then lowest line_number), so a re-exported file's corrections win.
-- Incremental (macros/incremental.sql): every comparison above stays inside one (account, day) or
-- one (account, bank id), so a run recomputes whole groups of the dedup slice (int_dedup_slice):
-- its rows are deleted here and rebuilt from all their copies.
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    indexes=[{'columns': ['transaction_id'], 'unique': True}, {'columns': ['txn_date']}, {'columns': ['bank_txn_id']}],
    pre_hook=["{{ delete_slice(in_dedup_slice('t')) }}"],
) }}
with normalized as (

    select * from {{ ref('int_transactions_normalized') }} as n
    {%- if is_incremental() %}
    where {{ in_dedup_slice('n') }}
    {%- endif %}

),

keyed_per_day as (

    select account, txn_date, amount, count(distinct bank_txn_id) as keyed
    from normalized
    where bank_txn_id is not null
    group by account, txn_date, amount

),

txns as (

    select unkeyed.*
    from (
        select
            normalized.*,
            case when bank_txn_id is null then row_number() over (
                partition by source_file, account, txn_date, amount, bank_txn_id
                order by line_number
            ) end as nth_unkeyed
        from normalized
    ) as unkeyed
    left join keyed_per_day
        on unkeyed.account = keyed_per_day.account
        and unkeyed.txn_date = keyed_per_day.txn_date
        and unkeyed.amount = keyed_per_day.amount
    where unkeyed.bank_txn_id is not null
        or keyed_per_day.keyed is null
        or unkeyed.nth_unkeyed > keyed_per_day.keyed

),

numbered as (

    select
        txns.*,
        case when bank_txn_id is null then row_number() over (
            partition by source_file, account, txn_date, amount, description_key, reference_key, bank_txn_id
            order by line_number
        ) else 1 end as occurrence
    from txns

),

keyed as (

    -- The natural-key parts are null on rows with a bank id, so those rows partition by (account, bank_txn_id).
    select
        numbered.*,
        case when bank_txn_id is null then txn_date end        as key_date,
        case when bank_txn_id is null then amount end          as key_amount,
        case when bank_txn_id is null then description_key end as key_description,
        case when bank_txn_id is null then reference_key end   as key_reference
    from numbered

),

ranked as (

    select
        keyed.*,
        row_number() over (
            partition by account, bank_txn_id, key_date, key_amount, key_description, key_reference, occurrence
            order by loaded_at desc, source_file desc, line_number
        ) as copy_rank,
        count(*) over (
            partition by account, bank_txn_id, key_date, key_amount, key_description, key_reference, occurrence
        ) as files_seen_in
    from keyed

)

select
    case when bank_txn_id is not null then {{ dbt.hash(dbt.concat(["'bank'", "'|'", "account", "'|'", "bank_txn_id"])) }}
    else {{ dbt.hash(dbt.concat([
        "account", "'|'",
        "cast(txn_date as " ~ dbt.type_string() ~ ")", "'|'",
        "cast(amount as " ~ dbt.type_string() ~ ")", "'|'",
        "description_key", "'|'",
        "reference_key", "'|'",
        "cast(occurrence as " ~ dbt.type_string() ~ ")"
    ])) }} end as transaction_id,
    account,
    txn_date,
    amount,
    description_key,
    reference_key,
    occurrence,
    source_file,
    line_number,
    txn_type,
    description,
    category,
    category_raw,
    payment_method,
    status,
    reference,
    merchant,
    receipt_url,
    extra,
    loaded_at,
    bank_txn_id,
    currency,
    balance,
    files_seen_in
from ranked
where copy_rank = 1
