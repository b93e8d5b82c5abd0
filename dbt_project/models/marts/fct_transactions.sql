-- One row per real transaction (deduplicated across overlapping exports), clean and typed.
select
    transaction_id,
    account,
    source_file,
    line_number,
    txn_date,
    txn_type,
    description,
    amount,
    abs(amount)                                                      as abs_amount,
    case when txn_type = 'Expense' then category end                 as category,
    case when txn_type = 'Expense' then category_raw end             as category_raw,
    payment_method,
    status,
    reference,
    merchant,
    receipt_url,
    currency,
    bank_txn_id,
    cast({{ dbt.date_trunc('month', 'txn_date') }} as date)          as month,
    loaded_at
from {{ ref('int_transactions_deduped') }}
