-- One row per transaction (int_transactions_deduped): what int_transfer_pairs matches on and the
-- hints it scores (see there). strong_hint: the text reads like a move between the user's own
-- accounts (PAYMENT THANK YOU, AUTOPAY, CRD PMT, TO/FROM SAVINGS, TO CHK, a masked account number
-- `...1234`, a QIF `[Account]` transfer); weak_hint: a transfer-ish word (TRANSFER,
-- XFER, PAYMENT, PMT, DEPOSIT, WITHDRAWAL); account_digits: the last 4 digits of the account's
-- name or number (OFX ACCTID, IBAN), '' when it has fewer.
{%- set strong = "(thank ?you|auto ?pay|\\me-?pay|crd pmt|card pmt|card payment|credit (card|crd) (pmt|payment|autopay|epay)|\\m(to|from) (sav|savings|chk|checking|chq)\\M|owners? draw|internal transfer|transfer between|umbuchung|uebertrag|übertrag|virement interne|\\.\\.\\.\\s?[0-9]{4}\\M)" -%}
{%- set weak = "(transfer|xfer|trnsfr|payment|pymt|pmt|deposit|withdrawal)" %}
select
    transaction_id,
    account,
    txn_date,
    amount,
    currency,
    coalesce(description, '') || ' ' || coalesce(reference, '')                   as text,
    coalesce(description, '') ~* '{{ strong }}'
        or coalesce(extra ->> 'bank code', '') like 'transfer [%'                 as strong_hint,
    (coalesce(description, '') || ' ' || coalesce(reference, '')) ~* '{{ weak }}' as weak_hint,
    case when length(regexp_replace(account, '[^0-9]', '', 'g')) >= 4
         then right(regexp_replace(account, '[^0-9]', '', 'g'), 4) else '' end   as account_digits
from {{ ref('int_transactions_deduped') }}
where amount <> 0
