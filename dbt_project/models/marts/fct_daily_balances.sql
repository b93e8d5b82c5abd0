{#-
  One row per account and day, from the account's first day (or its opening anchor, if earlier) to
  the household's last day: the balance at the end of the day, transfers included (money moved to
  savings is still the household's).
  The opening balance comes from one anchor per account, the first of:
    user       app.account_balances (`titans account set-balance ACCOUNT DATE AMOUNT`: the balance
               at the end of DATE; the earliest entry anchors, created here when missing);
    statement  the earliest balance a bank reported (int_reported_balances);
    none       no anchor: the balance is the cumulative net from 0 (balance_known = false).
  opening_balance = anchor balance - the account's amounts up to the anchor day. Every other balance
  the bank reported is reconciled with this one (assert_balances_match_statements).
-#}
{{ config(pre_hook=[
    "select pg_advisory_xact_lock(7240019)",
    "create schema if not exists app",
    "create table if not exists app.account_balances (
        account      text          not null,
        balance_date date          not null,
        balance      numeric(16,2) not null,
        note         text,
        set_at       timestamptz   not null default now(),
        primary key (account, balance_date))",
]) }}
-- Everything below works on the transactions grouped by (account, day, currency), int_account_days
-- (1M rows: 1.07 s when each part scanned the transactions again, EXPLAIN ANALYZE; ~0.3 s when this
-- model grouped them itself).
with by_currency as (

    select account, txn_date, currency, day_net, transactions
    from {{ ref('int_account_days') }}

),

daily as (

    select account, txn_date, sum(day_net) as day_net, cast(sum(transactions) as bigint) as transactions
    from by_currency
    group by account, txn_date

),

currencies as (

    select account, currency
    from (
        select account, currency,
               row_number() over (partition by account order by sum(transactions) desc, currency) as r
        from by_currency
        where currency is not null
        group by account, currency
    ) as c
    where r = 1

),

user_anchor as (

    select account, balance_date, balance, 'user' as source,
           row_number() over (partition by account order by balance_date) as r
    from app.account_balances

),

bank_anchor as (

    select account, balance_date, reported_balance as balance, 'statement' as source,
           row_number() over (partition by account order by balance_date, source_file) as r
    from {{ ref('int_reported_balances') }}

),

accounts as (

    select account, min(txn_date) as first_day from daily group by account
    union
    select account, balance_date from user_anchor where r = 1 and account not in (select account from daily)

),

anchors as (

    select
        accounts.account,
        coalesce(u.balance_date, b.balance_date)                    as anchor_date,
        coalesce(u.balance, b.balance)                              as anchor_balance,
        coalesce(u.source, b.source, 'none')                        as balance_source
    from accounts
    left join user_anchor as u on u.account = accounts.account and u.r = 1
    left join bank_anchor as b on b.account = accounts.account and b.r = 1

),

bounds as (

    select
        accounts.account,
        least(min(accounts.first_day), min(anchors.anchor_date))    as first_day
    from accounts
    left join anchors on anchors.account = accounts.account
    group by accounts.account

),

spine as (

    {{ day_spine('(select min(first_day) from bounds)',
                 '(select greatest(max(txn_date), (select max(anchor_date) from anchors)) from daily)') }}

),

-- materialized: computed once per account. Inlined into the final select, its correlated subquery
-- (then a scan of every transaction) ran once per output row: over 20 minutes at 1M rows.
openings as materialized (

    select
        anchors.account,
        anchors.balance_source,
        coalesce(anchors.anchor_balance - coalesce((
            select sum(d.day_net) from daily as d
            where d.account = anchors.account and d.txn_date <= anchors.anchor_date
        ), 0), 0)                                                   as opening_balance
    from anchors

),

grid as (

    select
        bounds.account,
        spine.date_day                                              as balance_date,
        coalesce(daily.day_net, 0)                                  as day_net,
        coalesce(daily.transactions, 0)                             as transactions
    from bounds
    inner join spine on spine.date_day >= bounds.first_day
    left join daily on daily.account = bounds.account and daily.txn_date = spine.date_day

)

select
    grid.account,
    grid.balance_date,
    currencies.currency,
    grid.day_net,
    grid.transactions,
    cast(openings.opening_balance + sum(grid.day_net) over (
        partition by grid.account order by grid.balance_date
        rows between unbounded preceding and current row
    ) as numeric(16, 2))                                            as balance,
    cast(openings.opening_balance as numeric(16, 2))                as opening_balance,
    openings.balance_source,
    openings.balance_source <> 'none'                               as balance_known
from grid
inner join openings on openings.account = grid.account
left join currencies on currencies.account = grid.account
