-- One row per parsed CSV record (same grain as stg_transactions) with normalized labels.
-- Labels: normalize_label() (lower, trim, non-alphanumeric runs -> '_'), then the alias seed maps
-- known variants to a canonical label; anything else keeps its normalized text.
-- Incremental (macros/incremental.sql): a run re-reads only the changed files (int_changes) and
-- replaces their rows; a removed file's rows leave.
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    indexes=[{'columns': ['source_file']}, {'columns': ['txn_date']}, {'columns': ['bank_txn_id']}],
    pre_hook=["{{ delete_slice(in_changed_files('t.source_file')) }}"],
) }}
with txns as (

    select * from {{ ref('stg_transactions') }}
    {%- if is_incremental() %}
    where {{ in_changed_files('source_file') }}
    {%- endif %}

),

category_aliases as (

    select {{ normalize_label('alias') }} as alias, category
    from {{ ref('category_aliases') }}

),

payment_method_aliases as (

    select {{ normalize_label('alias') }} as alias, payment_method
    from {{ ref('payment_method_aliases') }}

),

status_aliases as (

    select {{ normalize_label('alias') }} as alias, status
    from {{ ref('status_aliases') }}

),

labelled as (

    select
        txns.*,
        {{ normalize_label('txns.category_raw') }}         as category_label,
        {{ normalize_label('txns.payment_method_raw') }}   as payment_method_label,
        {{ normalize_label('txns.status_raw') }}           as status_label,
        {{ clean_name('txns.reference') }}                 as reference_name,
        {{ clean_description('txns.description') }}        as description_name
    from txns

)

select
    labelled.source_file,
    labelled.line_number,
    labelled.account,
    labelled.txn_date,
    labelled.txn_type,
    labelled.description,
    labelled.amount,
    coalesce(category_aliases.category, labelled.category_label)                 as category,
    coalesce(payment_method_aliases.payment_method, labelled.payment_method_label) as payment_method,
    coalesce(status_aliases.status, labelled.status_label)                       as status,
    labelled.reference,
    coalesce(labelled.reference_name, labelled.description_name)                 as merchant,
    labelled.receipt_url,
    labelled.extra,
    labelled.loaded_at,
    labelled.bank_txn_id,
    labelled.currency,
    labelled.balance,
    labelled.category_raw,
    labelled.payment_method_raw,
    labelled.status_raw,
    labelled.description_key,
    labelled.reference_key

from labelled
left join category_aliases
    on labelled.category_label = category_aliases.alias
left join payment_method_aliases
    on labelled.payment_method_label = payment_method_aliases.alias
left join status_aliases
    on labelled.status_label = status_aliases.alias
