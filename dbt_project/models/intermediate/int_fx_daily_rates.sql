-- One row per (currency, day) for every currency the transactions use other than the reporting
-- currency (env TITANS_REPORTING_CURRENCY, default USD), over the transactions' days: the rate to the
-- reporting currency, carried forward from the latest seeds/fx_rates row on or before the day
-- (from_currency -> reporting: rate; reporting -> currency: 1 / rate). Null before the first rate.
{%- set reporting = env_var('TITANS_REPORTING_CURRENCY', 'USD') | upper %}
with currencies as (

    select distinct upper(currency) as currency
    from {{ ref('int_transactions_deduped') }}
    where currency is not null and upper(currency) <> '{{ reporting }}'

),

rates as (

    select cast(rate_date as date) as rate_date, upper(from_currency) as currency, cast(rate as numeric(18, 8)) as rate
    from {{ ref('fx_rates') }}
    where upper(to_currency) = '{{ reporting }}' and rate > 0
    union all
    select cast(rate_date as date), upper(to_currency), cast(1 / rate as numeric(18, 8))
    from {{ ref('fx_rates') }}
    where upper(from_currency) = '{{ reporting }}' and rate > 0

),

spine as (

    -- from the first rate, if earlier: a rate set before the first transaction carries into it
    {{ day_spine("(select least(min(txn_date), (select min(rate_date) from rates)) from " ~ ref('int_transactions_deduped') ~ ")",
                 "(select max(txn_date) from " ~ ref('int_transactions_deduped') ~ ")") }}

),

grid as (

    select c.currency, s.date_day as rate_date, r.rate,
           -- the rows up to and including the day's latest rate share a group
           count(r.rate) over (partition by c.currency order by s.date_day) as grp
    from currencies as c
    cross join spine as s
    left join (
        select currency, rate_date, rate,
               row_number() over (partition by currency, rate_date order by rate desc) as r
        from rates
    ) as r on r.currency = c.currency and r.rate_date = s.date_day and r.r = 1

)

select
    currency,
    rate_date,
    '{{ reporting }}'                                                          as reporting_currency,
    max(rate) over (partition by currency, grp)                                as rate
from grid
