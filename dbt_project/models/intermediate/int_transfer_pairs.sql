{#-
  Transfers between the user's own accounts: one row per pair (the outflow in one account, the
  inflow in another). Rule (titans_assets/lib/transfers.py holds the same rule in Python):
    candidates  an outflow and an inflow of the same absolute amount, in two different accounts,
                the same currency (an unknown currency is compatible with any), at most
                var('transfer_window_days', 4) days apart;
    hints       strong: own-account words (PAYMENT THANK YOU, AUTOPAY, CRD PMT, TO/FROM SAVINGS,
                TO CHK, a masked `...1234`, a QIF `[Account]` transfer; not a card number `XXX1234`, which card terminals print on purchases);
                weak: TRANSFER, XFER, PAYMENT, PMT, DEPOSIT; the other account's last 4 digits in
                the text. A candidate needs a strong hint on one side, weak ones on both, or the
                other account's number;
    order       the best hint score first, then the nearest date, then the transaction ids;
    one-to-one  rounds of mutual best choices: a candidate is taken when it is the first choice of
                both its rows; taken rows leave, and the next round chooses among the rest.
  app.transfer_overrides (created here when missing: the user's table, never rebuilt) forces a
  pair (action 'pair': those two rows, whatever the rule says) or breaks one (action 'break': the
  two rows are never paired with each other; other_transaction_id '' = never a transfer).
  Incremental (macros/incremental.sql): pairing compares rows of one absolute amount only, so a run
  recomputes the amounts int_transfer_slice names (and every forced pair) and keeps the rest. The
  post-hook keeps the overrides this build read (int_transfer_overrides_built): the next run's slice
  covers an override added, changed or deleted since.
-#}
-- depends_on: {{ ref('int_transfer_slice') }}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook=[
        "select pg_advisory_xact_lock(7240019)",
        "create schema if not exists app",
        "create table if not exists app.transfer_overrides (
            transaction_id       text        not null,
            other_transaction_id text        not null default '',
            action               text        not null check (action in ('pair', 'break')),
            note                 text,
            created_at           timestamptz not null default now(),
            primary key (transaction_id, other_transaction_id))",
        "{{ delete_slice(\"t.matched_by = 'override' or \" ~ in_transfer_slice('t.amount')) }}",
    ],
    post_hook=[
        "create table if not exists {{ this.schema }}.int_transfer_overrides_built
            (transaction_id text, other_transaction_id text, action text)",
        "delete from {{ this.schema }}.int_transfer_overrides_built",
        "insert into {{ this.schema }}.int_transfer_overrides_built
            select transaction_id, other_transaction_id, action from app.transfer_overrides",
    ],
) }}
{%- set window = var('transfer_window_days', 4) -%}
{%- set rounds = 4 -%}
with txns as (

    select * from {{ ref('int_transfer_hints') }} as h
    {%- if is_incremental() %}
    where {{ in_transfer_slice('abs(h.amount)') }}
    {%- endif %}

),

overrides as (

    select transaction_id, other_transaction_id, action
    from app.transfer_overrides

),

never as (

    select transaction_id from overrides where action = 'break' and other_transaction_id = ''

),

forced as (

    -- the negative side is the outflow (ties: the smaller id)
    select
        case when a.amount < b.amount or (a.amount = b.amount and a.transaction_id < b.transaction_id)
             then a.transaction_id else b.transaction_id end                          as out_id,
        case when a.amount < b.amount or (a.amount = b.amount and a.transaction_id < b.transaction_id)
             then b.transaction_id else a.transaction_id end                          as in_id
    from overrides as o
    inner join txns as a on a.transaction_id = o.transaction_id
    inner join txns as b on b.transaction_id = o.other_transaction_id
    where o.action = 'pair' and a.transaction_id <> b.transaction_id

),

forced_one as (

    -- a row forced into several pairs keeps the first (by id): still one-to-one
    select out_id, in_id
    from (
        select
            forced.*,
            row_number() over (partition by out_id order by in_id) as r_out,
            row_number() over (partition by in_id order by out_id) as r_in
        from (select distinct out_id, in_id from forced) as forced
    ) as f
    where r_out = 1 and r_in = 1

),

taken_by_override as (

    select out_id as transaction_id from forced_one
    union
    select in_id from forced_one

),

broken as (

    select transaction_id as a, other_transaction_id as b from overrides where action = 'break'
    union
    select other_transaction_id, transaction_id from overrides where action = 'break'

),

-- The amounts that can hold an eligible candidate at all (hint_score >= 2 below needs a strong hint,
-- weak hints on both sides or a text naming the other account's last 4 digits): an exact superset,
-- so the self-join below reads only their rows and finds the same candidates. Everyday amounts
-- (coffees, groceries) have none. Materialized: inlined, the digits were recomputed for every row.
account_digits as materialized (

    select distinct account_digits as digits from txns where length(account_digits) = 4

),

pairable as (

    select abs(t.amount) as amount
    from txns as t
    group by abs(t.amount)
    having bool_or(t.strong_hint)
        or (bool_or(t.weak_hint and t.amount < 0) and bool_or(t.weak_hint and t.amount > 0))
        or bool_or(exists (select 1 from account_digits as d where position(d.digits in t.text) > 0))

),

pairable_txns as (

    select * from txns where abs(amount) in (select amount from pairable)

),

candidates as (

    select
        o.transaction_id                                                      as out_id,
        i.transaction_id                                                      as in_id,
        abs({{ dbt.datediff('o.txn_date', 'i.txn_date', 'day') }})            as days_apart,
        2 * (case when o.strong_hint then 1 else 0 end + case when i.strong_hint then 1 else 0 end)
        + case when o.weak_hint then 1 else 0 end + case when i.weak_hint then 1 else 0 end
        + 3 * (case when length(i.account_digits) = 4 and position(i.account_digits in o.text) > 0 then 1 else 0 end
             + case when length(o.account_digits) = 4 and position(o.account_digits in i.text) > 0 then 1 else 0 end)
                                                                              as hint_score
    from pairable_txns as o
    inner join pairable_txns as i
        on i.amount = -o.amount
        and i.account <> o.account
        and i.txn_date between o.txn_date - {{ window }} and o.txn_date + {{ window }}
        and (o.currency is null or i.currency is null or o.currency = i.currency)
    where o.amount < 0
      and o.transaction_id not in (select transaction_id from taken_by_override)
      and i.transaction_id not in (select transaction_id from taken_by_override)
      and o.transaction_id not in (select transaction_id from never)
      and i.transaction_id not in (select transaction_id from never)
      and not exists (select 1 from broken where broken.a = o.transaction_id and broken.b = i.transaction_id)

),

eligible as (

    select *
    from candidates
    where hint_score >= 2

),

{% for r in range(1, rounds + 1) %}
round_{{ r }} as (

    select out_id, in_id, days_apart, hint_score, {{ r }} as match_round
    from (
        select
            e.*,
            row_number() over (partition by out_id order by hint_score desc, days_apart, in_id) as rank_out,
            row_number() over (partition by in_id order by hint_score desc, days_apart, out_id) as rank_in
        from eligible as e
        {%- if r > 1 %}
        where not exists (select 1 from matched_{{ r - 1 }} as m where m.out_id = e.out_id or m.in_id = e.in_id)
        {%- endif %}
    ) as ranked
    where rank_out = 1 and rank_in = 1

),

matched_{{ r }} as (

    select out_id, in_id, days_apart, hint_score, match_round from round_{{ r }}
    {%- if r > 1 %}
    union all
    select out_id, in_id, days_apart, hint_score, match_round from matched_{{ r - 1 }}
    {%- endif %}

),

{% endfor %}
pairs as (

    select out_id, in_id, days_apart, hint_score, match_round, 'rule' as matched_by
    from matched_{{ rounds }}
    union all
    select f.out_id, f.in_id, abs({{ dbt.datediff('o.txn_date', 'i.txn_date', 'day') }}), null, 0, 'override'
    from forced_one as f
    inner join txns as o on o.transaction_id = f.out_id
    inner join txns as i on i.transaction_id = f.in_id

)

select
    {{ dbt.hash(dbt.concat(["pairs.out_id", "'|'", "pairs.in_id"])) }}  as transfer_pair_id,
    pairs.out_id                                                        as out_transaction_id,
    pairs.in_id                                                         as in_transaction_id,
    o.account                                                           as out_account,
    i.account                                                           as in_account,
    o.txn_date                                                          as out_date,
    i.txn_date                                                          as in_date,
    -o.amount                                                           as amount,
    coalesce(o.currency, i.currency)                                    as currency,
    pairs.days_apart,
    pairs.hint_score,
    pairs.match_round,
    pairs.matched_by
from pairs
inner join txns as o on o.transaction_id = pairs.out_id
inner join txns as i on i.transaction_id = pairs.in_id
