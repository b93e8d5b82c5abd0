-- ml_transaction_features has exactly the rows of fct_transactions that are not transfers: every transaction_id on both
-- sides (the feature joins are inner joins, so a missing daily aggregate or calendar day would drop
-- rows silently), with the same date, account and amount. Duplicates fail the unique test.
select
    coalesce(f.transaction_id, t.transaction_id)        as transaction_id,
    case
        when f.transaction_id is null then 'missing from ml_transaction_features'
        when t.transaction_id is null then 'not in fct_transactions'
        else 'txn_date, account or amount differs'
    end                                                 as problem
from {{ ref('ml_transaction_features') }} as f
full outer join (select * from {{ ref('fct_transactions') }} where not is_transfer) as t
    on f.transaction_id = t.transaction_id
where f.transaction_id is null
   or t.transaction_id is null
   or f.txn_date is distinct from t.txn_date
   or f.account is distinct from t.account
   or f.amount is distinct from t.amount
