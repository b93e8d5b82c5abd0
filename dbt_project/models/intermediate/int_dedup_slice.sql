-- The groups deduplication recomputes in an incremental run (macros/incremental.sql, in_dedup_slice):
-- days (account, txn_date; bank_txn_id null) for the rows without a bank id, and bank ids
-- (account, bank_txn_id; txn_date null): those of the changed rows and every one present on a
-- changed day (they count in keyed_per_day there).
-- A full refresh rebuilds everything and reads no changes: empty then.
-- depends_on: {{ ref('int_changes') }}
-- depends_on: {{ ref('int_transactions_normalized') }}
{%- if flags.FULL_REFRESH %}
select cast(null as text) as account, cast(null as date) as txn_date, cast(null as text) as bank_txn_id where false
{%- else %}
with changes as (

    select distinct account, txn_date, bank_txn_id
    from {{ ref('int_changes') }}
    where account is not null

),

days as (

    select distinct account, txn_date from changes

)

select account, txn_date, cast(null as text) as bank_txn_id from days
union
select account, cast(null as date), bank_txn_id from changes where bank_txn_id is not null
union
select n.account, cast(null as date), n.bank_txn_id
from {{ ref('int_transactions_normalized') }} as n
inner join days on days.account = n.account and days.txn_date = n.txn_date
where n.bank_txn_id is not null
{%- endif %}
