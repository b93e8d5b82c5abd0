-- The amounts whose transfer pairing an incremental run recomputes (macros/incremental.sql): pairing
-- only ever compares an outflow with an inflow of the same absolute amount, so the one-to-one rounds
-- of int_transfer_pairs run independently per amount, and recomputing whole amounts is exact. They
-- are the amounts of the dedup slice's rows, after (int_transfer_hints) and before (the previous
-- fct_transactions), and of every row named by app.transfer_overrides now or when the pairs were
-- last built (int_transfer_overrides_built, written by int_transfer_pairs): an override added,
-- changed or deleted moves only its own rows' pairs, and a forced pair may join two amounts.
-- Without the previous tables (never built, or dropped): every amount, i.e. a whole recompute.
-- A full refresh rebuilds everything and reads no changes: empty then.
-- depends_on: {{ ref('int_transfer_hints') }}
-- depends_on: {{ ref('int_dedup_slice') }}
{%- if flags.FULL_REFRESH %}
select cast(null as numeric) as amount where false
{%- else %}
{%- set fct = existing_relation('fct_transactions', 'marts') %}
{%- set built = existing_relation('int_transfer_overrides_built') %}
{%- if fct is none or built is none or existing_relation('int_transfer_pairs') is none %}
select distinct abs(amount) as amount from {{ ref('int_transfer_hints') }}
{%- else %}
with named as (

    select transaction_id from app.transfer_overrides
    union
    select other_transaction_id from app.transfer_overrides where other_transaction_id <> ''
    union
    select transaction_id from {{ built }}
    union
    select other_transaction_id from {{ built }} where other_transaction_id <> ''

)

select abs(h.amount) as amount
from {{ ref('int_transfer_hints') }} as h
where {{ in_dedup_slice('h') }}
union
select t.abs_amount
from {{ fct }} as t
where {{ in_dedup_slice('t') }}
union
select abs(h.amount)
from {{ ref('int_transfer_hints') }} as h
where h.transaction_id in (select transaction_id from named)
union
select t.abs_amount
from {{ fct }} as t
where t.transaction_id in (select transaction_id from named)
{%- endif %}
{%- endif %}
