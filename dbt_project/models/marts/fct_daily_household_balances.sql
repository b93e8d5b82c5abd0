-- The household's balance per currency and day: the sum of its accounts' balances in that currency
-- (fct_daily_balances), never across currencies. Accounts whose files state no currency (the seed
-- CSV) form their own group, currency null. balance_known: every account in the group has an
-- opening balance (a statement's or the user's).
select
    balance_date,
    currency,
    count(*)                                  as accounts,
    sum(balance)                              as balance,
    sum(day_net)                              as day_net,
    bool_and(balance_known)                   as balance_known
from {{ ref('fct_daily_balances') }}
group by balance_date, currency
