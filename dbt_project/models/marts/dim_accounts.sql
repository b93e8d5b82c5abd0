-- One row per account: what the loaded files say about it. Currency is the one most of its kept
-- transactions state (null when no file states one: the seed CSV does not); the latest balance is
-- the balance after the account's latest raw row that carries one (a CAMT.053 / MT940 statement's
-- running balance, proven by its opening and closing balances), with the date of that row. The
-- institution is the one most of its raw rows name (OFX FI/ORG or BANKID, CAMT.053 servicer, MT940
-- envelope BIC or bank code, a CSV profile's `institution:`); null when no file names one.
with transactions as (

    select account, txn_date, currency
    from {{ ref('fct_transactions') }}

),

raw_rows as (

    select account, source_file, line_number, txn_date, balance, institution, loaded_at
    from {{ ref('stg_transactions') }}

),

files as (

    select account, source_file, rows_quarantined
    from {{ ref('stg_files') }}

),

accounts as (

    select account from transactions
    union
    select account from raw_rows
    union
    select account from files

),

currency_counts as (

    select
        account,
        currency,
        row_number() over (partition by account order by count(*) desc, currency) as currency_rank
    from transactions
    where currency is not null
    group by account, currency

),

institution_counts as (

    select
        account,
        institution,
        row_number() over (partition by account order by count(*) desc, institution) as institution_rank
    from raw_rows
    where institution is not null
    group by account, institution

),

activity as (

    select
        account,
        min(txn_date) as first_txn_date,
        max(txn_date) as last_txn_date,
        count(*)      as transactions
    from transactions
    group by account

),

loaded as (

    select account, count(*) as rows_loaded
    from raw_rows
    group by account

),

file_counts as (

    select account, count(*) as files, sum(rows_quarantined) as rows_quarantined
    from files
    group by account

),

balances as (

    select
        account,
        balance,
        txn_date as balance_date,
        row_number() over (
            partition by account
            order by txn_date desc, loaded_at desc, source_file desc, line_number desc
        ) as balance_rank
    from raw_rows
    where balance is not null

)

select
    accounts.account,
    currency_counts.currency,
    institution_counts.institution,
    activity.first_txn_date,
    activity.last_txn_date,
    coalesce(activity.transactions, 0)             as transactions,
    coalesce(loaded.rows_loaded, 0)                as rows_loaded,
    coalesce(file_counts.rows_quarantined, 0)      as rows_quarantined,
    coalesce(file_counts.files, 0)                 as files,
    cast(balances.balance as numeric(16, 2))       as latest_balance,
    balances.balance_date                          as latest_balance_date
from accounts
left join currency_counts
    on accounts.account = currency_counts.account and currency_counts.currency_rank = 1
left join institution_counts
    on accounts.account = institution_counts.account and institution_counts.institution_rank = 1
left join activity on accounts.account = activity.account
left join loaded on accounts.account = loaded.account
left join file_counts on accounts.account = file_counts.account
left join balances on accounts.account = balances.account and balances.balance_rank = 1
