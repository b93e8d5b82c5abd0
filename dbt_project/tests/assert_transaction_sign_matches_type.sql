-- The sign of every amount matches its type: expenses <= 0, income >= 0.
-- A failure usually means an export writes expenses as positive numbers (or a refund is typed as
-- an expense); the daily and monthly totals would be wrong, so this blocks downstream use.
select transaction_id, source_file, line_number, txn_date, txn_type, amount
from {{ ref('fct_transactions') }}
where (txn_type = 'Expense' and amount > 0)
   or (txn_type = 'Income' and amount < 0)
