-- Every transaction has an amount in the reporting currency: a currency other than
-- TITANS_REPORTING_CURRENCY needs a rate in seeds/fx_rates.csv on or before its date. One row per
-- currency that lacks one, naming the first day without a rate and how many rows wait for it.
select
    currency,
    reporting_currency,
    min(txn_date)   as first_day_without_rate,
    count(*)        as transactions_without_rate
from {{ ref('fct_transactions') }}
where amount_reporting is null
group by currency, reporting_currency
