-- The fct_transactions rows an incremental run replaces (macros/incremental.sql), with their dates
-- before (side 'old', the current fct_transactions) and after (side 'new'): the dedup slice's rows,
-- every row whose transfer pairing changed (a pair can move far from the changed rows, but only
-- within the amounts int_transfer_pairs recomputed, int_transfer_slice), and every row flagged
-- transfer_unpaired before or after (its app.transfer_overrides may have changed). Reads
-- fct_transactions' previous build directly (not ref: fct_transactions is built from this).
-- A full refresh rebuilds everything and reads no changes: empty then.
-- depends_on: {{ ref('int_transfer_pairs') }}
-- depends_on: {{ ref('int_transfer_hints') }}
-- depends_on: {{ ref('int_transactions_deduped') }}
-- depends_on: {{ ref('int_dedup_slice') }}
-- depends_on: {{ ref('int_transfer_slice') }}
{%- if flags.FULL_REFRESH %}
select cast(null as text) as side, cast(null as text) as transaction_id, cast(null as date) as txn_date where false
{%- else %}
{%- set fct = existing_relation('fct_transactions', 'marts') %}
with pairs as (

    select out_transaction_id as transaction_id, transfer_pair_id, in_account as transfer_account,
           amount, matched_by
    from {{ ref('int_transfer_pairs') }}
    union all
    select in_transaction_id, transfer_pair_id, out_account, amount, matched_by
    from {{ ref('int_transfer_pairs') }}

),

never as (

    select transaction_id from app.transfer_overrides where action = 'break' and other_transaction_id = ''

),

new_unpaired as (

    select h.transaction_id
    from {{ ref('int_transfer_hints') }} as h
    where h.strong_hint
      and h.transaction_id not in (select transaction_id from pairs)
      and h.transaction_id not in (select transaction_id from never)

),

{%- if fct is not none %}

-- not materialized: read three times, PostgreSQL would keep all 1M rows of it; inlined, each use
-- reads only its rows (the changed pairs' amounts, the unpaired flags, ids through the index):
-- 1.1-1.4 s -> 0.86-0.93 s on the 1M warehouse
old as not materialized (

    select transaction_id, txn_date, abs_amount, is_transfer, transfer_pair_id, transfer_account,
           transfer_unpaired
    from {{ fct }}

),

pair_changed as (

    -- the pairs of the amounts this run recomputed, before and after (every other pair is kept)
    select coalesce(o.transaction_id, p.transaction_id) as transaction_id
    from (select * from old where is_transfer and {{ in_transfer_slice('abs_amount') }}) as o
    full outer join (
        select * from pairs where matched_by = 'override' or {{ in_transfer_slice('amount') }}
    ) as p on p.transaction_id = o.transaction_id
    where o.transfer_pair_id is distinct from p.transfer_pair_id
       or o.transfer_account is distinct from p.transfer_account

),

ids as (

    select transaction_id from pair_changed
    union
    select transaction_id from new_unpaired
    union
    select transaction_id from old where transfer_unpaired

)

select 'old' as side, t.transaction_id, t.txn_date
from {{ fct }} as t
where {{ in_dedup_slice('t') }}
union
select 'old', old.transaction_id, old.txn_date
from old
inner join ids on ids.transaction_id = old.transaction_id
union
{%- else %}

ids as (

    select transaction_id from new_unpaired

)

{%- endif %}
select 'new' as side, t.transaction_id, t.txn_date
from {{ ref('int_transactions_deduped') }} as t
where {{ in_dedup_slice('t') }}
union
select 'new', d.transaction_id, d.txn_date
from {{ ref('int_transactions_deduped') }} as d
inner join ids on ids.transaction_id = d.transaction_id
{%- endif %}
