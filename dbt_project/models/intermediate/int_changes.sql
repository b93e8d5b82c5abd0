-- What changed since the marts were last built (macros/incremental.sql): one row per distinct
-- (account, txn_date, bank_txn_id) of every changed file, before (side 'old', from
-- int_file_footprints, what the marts hold) and after (side 'new', from stg_transactions). A changed
-- file is new, replaced or removed: its (source_file, loaded_at) in raw.files differs from the
-- footprints'. Files without rows (rejected, or replaced by an empty export) appear with nulls.
-- Reads int_file_footprints' previous build directly (not ref: the footprints are written after the
-- marts, from this model's changes).
-- A full refresh rebuilds everything and reads no changes: empty then.
-- depends_on: {{ ref('stg_files') }}
-- depends_on: {{ ref('stg_transactions') }}
{%- if flags.FULL_REFRESH %}
select cast(null as text) as side, cast(null as text) as source_file, cast(null as text) as account, cast(null as date) as txn_date, cast(null as text) as bank_txn_id where false
{%- else %}
{%- set footprints = existing_relation('int_file_footprints') %}
with now_files as (

    select source_file, loaded_at from {{ ref('stg_files') }}

),

then_files as (

    {%- if footprints is not none %}
    select distinct source_file, loaded_at from {{ footprints }}
    {%- else %}
    select cast(null as text) as source_file, cast(null as timestamptz) as loaded_at where false
    {%- endif %}

),

changed as (

    select coalesce(n.source_file, t.source_file) as source_file
    from now_files as n
    full outer join then_files as t on t.source_file = n.source_file
    where n.loaded_at is distinct from t.loaded_at

)

{%- if footprints is not none %}
select distinct 'old' as side, f.source_file, f.account, f.txn_date, f.bank_txn_id
from {{ footprints }} as f
where f.source_file in (select source_file from changed)
union all
{%- endif %}
select distinct 'new' as side, c.source_file, s.account, s.txn_date, s.bank_txn_id
from changed as c
left join {{ ref('stg_transactions') }} as s on s.source_file = c.source_file
{%- endif %}
