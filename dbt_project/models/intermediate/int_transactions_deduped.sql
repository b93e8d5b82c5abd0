-- One row per real transaction: overlapping exports of the same account collapse to one row, while
-- genuine identical transactions inside one file (two coffees, a duplicate charge) are all kept.
--
-- occurrence  = the n-th identical record inside ONE file:
--               row_number() over (partition by source_file, account, txn_date, amount,
--                                  description_key, reference_key order by line_number)
-- natural key = (account, txn_date, amount, description_key, reference_key, occurrence)
--               description_key = lower(trim(description)), reference_key = coalesce(lower(trim(reference)), '')
-- A record seen in several files keeps the copy from the most recently loaded file
-- (ties: greater source_file, then lowest line_number), so a re-exported file's corrections win.
with txns as (

    select * from {{ ref('int_transactions_normalized') }}

),

numbered as (

    select
        txns.*,
        row_number() over (
            partition by source_file, account, txn_date, amount, description_key, reference_key
            order by line_number
        ) as occurrence
    from txns

),

ranked as (

    select
        numbered.*,
        row_number() over (
            partition by account, txn_date, amount, description_key, reference_key, occurrence
            order by loaded_at desc, source_file desc, line_number
        ) as copy_rank,
        count(*) over (
            partition by account, txn_date, amount, description_key, reference_key, occurrence
        ) as files_seen_in
    from numbered

)

select
    {{ dbt.hash(dbt.concat([
        "account", "'|'",
        "cast(txn_date as " ~ dbt.type_string() ~ ")", "'|'",
        "cast(amount as " ~ dbt.type_string() ~ ")", "'|'",
        "description_key", "'|'",
        "reference_key", "'|'",
        "cast(occurrence as " ~ dbt.type_string() ~ ")"
    ])) }} as transaction_id,
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
    payment_method,
    status,
    reference,
    merchant,
    receipt_url,
    extra,
    loaded_at,
    files_seen_in
from ranked
where copy_rank = 1
