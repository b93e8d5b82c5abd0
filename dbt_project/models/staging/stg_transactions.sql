-- One row per loaded CSV record: renamed, trimmed, blanks -> null, plus lower-cased helper columns
-- used for normalization and deduplication downstream. No rows are added or removed here.
with source as (

    select * from {{ source('raw', 'transactions') }}

)

select
    source_file,
    line_number,
    account,
    txn_date,
    trim(txn_type)                                  as txn_type,
    trim(description)                               as description,
    cast(amount as numeric(14, 2))                  as amount,
    nullif(trim(category), '')                      as category_raw,
    nullif(trim(payment_method), '')                as payment_method_raw,
    nullif(trim(status), '')                        as status_raw,
    nullif(trim(reference), '')                     as reference,
    nullif(trim(receipt_url), '')                   as receipt_url,
    extra,
    loaded_at,
    nullif(trim(bank_txn_id), '')                   as bank_txn_id,
    nullif(upper(trim(currency)), '')               as currency,
    balance,
    nullif(trim(institution), '')                   as institution,

    -- helpers: lower-cased trimmed text ('' when absent, so they can sit in keys and joins)
    lower(trim(description))                        as description_key,
    coalesce(lower(trim(reference)), '')            as reference_key,
    nullif(lower(trim(category)), '')               as category_text,
    nullif(lower(trim(payment_method)), '')         as payment_method_text,
    nullif(lower(trim(status)), '')                 as status_text

from source
