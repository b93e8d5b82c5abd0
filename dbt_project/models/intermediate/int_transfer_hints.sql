-- One row per transaction (int_transactions_deduped): what int_transfer_pairs matches on and the
-- hints it scores (see there). strong_hint: the text reads like a move between the user's own
-- accounts (PAYMENT THANK YOU, AUTOPAY, CRD PMT, TO/FROM SAVINGS, TO CHK, a masked account number
-- `...1234`, a QIF `[Account]` transfer); weak_hint: a transfer-ish word (TRANSFER,
-- XFER, PAYMENT, PMT, DEPOSIT, WITHDRAWAL); account_digits: the last 4 digits of the account's
-- name or number (OFX ACCTID, IBAN), '' when it has fewer.
--
-- The hints are vars (dbt_project.yml `transfer_hints`, lib/transfers.py reads them too). A strong
-- hint's regex runs only on a description that holds one of its words, a prefilter that cannot change
-- the result; weak hints are plain words; the account's digits are computed once per account. Per 1M
-- rows: ~12.6 s before, ~2.3 s now (benchmarks/transfer_hints.py, docs/benchmarks.md).
{%- set hints = var('transfer_hints') -%}
{%- set strong = "(" ~ (hints.strong | map(attribute='pattern') | join("|")) ~ ")" -%}
{%- set words = hints.strong | map(attribute='words') | sum(start=[]) %}
-- Incremental: a row's hints are its own; the dedup slice's rows are replaced (macros/incremental.sql).
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    indexes=[{'columns': ['transaction_id'], 'unique': True}, {'columns': ['txn_date']}, {'columns': ['bank_txn_id']}],
    pre_hook=["{{ delete_slice(in_dedup_slice('t')) }}"],
) }}
-- rows: inlined where it is read (never written out); numerals: computed once per account, not per row
with rows as not materialized (

    select
        d.transaction_id,
        d.account,
        d.txn_date,
        d.bank_txn_id,
        d.amount,
        d.currency,
        d.description,
        coalesce(d.description, '') || ' ' || coalesce(d.reference, '') as text,
        coalesce(d.extra ->> 'bank code', '') as bank_code
    from {{ ref('int_transactions_deduped') }} as d
    where d.amount <> 0
    {%- if is_incremental() %}
      and {{ in_dedup_slice('d') }}
    {%- endif %}

),

numerals as materialized (

    select account, regexp_replace(account, '[^0-9]', '', 'g') as n
    from (select distinct account from rows) as a

)

select
    r.transaction_id,
    r.account,
    r.txn_date,
    r.bank_txn_id,
    r.amount,
    r.currency,
    r.text,
    case when {{ contains_any('lower(r.description)', words) }} then r.description ~* '{{ strong }}' else false end
        or r.bank_code like 'transfer [%' as strong_hint,
    {{ contains_any('lower(r.text)', hints.weak) }} as weak_hint,
    case when length(n.n) >= 4 then right(n.n, 4) else '' end as account_digits
from rows as r
left join numerals as n on n.account = r.account
