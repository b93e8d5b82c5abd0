-- Every balance a bank reported (int_reported_balances: a statement's end-of-day balance) equals the
-- balance fct_daily_balances computes for that account and day, to the cent. One row per account
-- that diverges, naming the first day it does (a missing statement shows up on the first day of the
-- statement after it) and how many reported days disagree.
with checked as (

    select
        r.account,
        r.balance_date,
        r.source_file,
        r.reported_balance,
        b.balance                                  as computed_balance,
        r.reported_balance - coalesce(b.balance, 0) as difference
    from {{ ref('int_reported_balances') }} as r
    left join {{ ref('fct_daily_balances') }} as b
        on b.account = r.account and b.balance_date = r.balance_date
    where b.balance is null or r.reported_balance <> b.balance

)

select
    account,
    balance_date                                   as first_divergent_day,
    source_file,
    reported_balance,
    computed_balance,
    difference,
    days_diverging
from (
    select
        checked.*,
        count(*) over (partition by account)       as days_diverging,
        row_number() over (partition by account order by balance_date, source_file) as r
    from checked
) as c
where r = 1
