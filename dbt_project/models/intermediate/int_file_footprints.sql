-- What the marts were built from: per loaded file (and its loaded_at), the distinct
-- (account, txn_date, bank_txn_id) of its rows; a file without rows has one row of nulls.
-- Written after every incremental model (the depends_on below), so a run that stops half way is
-- redone from the same changes by the next one (macros/incremental.sql). int_changes compares
-- raw.files with this table.
-- depends_on: {{ ref('fct_transactions') }}
-- depends_on: {{ ref('fct_daily_metrics') }}
-- depends_on: {{ ref('fct_monthly_category') }}
-- depends_on: {{ ref('fct_daily_metrics_by_currency') }}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook=["{{ delete_slice(in_changed_files('t.source_file')) }}"],
) }}
with files as (

    select source_file, loaded_at from {{ ref('stg_files') }}
    {%- if is_incremental() %}
    where {{ in_changed_files('source_file') }}
    {%- endif %}

),

rows as (

    select distinct source_file, account, txn_date, bank_txn_id
    from {{ ref('stg_transactions') }}
    {%- if is_incremental() %}
    where {{ in_changed_files('source_file') }}
    {%- endif %}

)

select files.source_file, files.loaded_at, rows.account, rows.txn_date, rows.bank_txn_id
from files
left join rows on rows.source_file = files.source_file
