-- One row per (month, txn_type, category): absolute totals, counts, and each category's share of
-- the month's expenses. Income rows have no category in fct_transactions and are reported under
-- category 'income'; expenses without a category under 'uncategorized'. Transfers between the
-- user's own accounts are left out.
--
-- Incremental (macros/incremental.sql): a run rebuilds the months whose transactions changed
-- (int_transaction_changes, before and after).
-- depends_on: {{ ref('int_transaction_changes') }}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook=["{{ delete_slice('t.month in ' ~ changed_months()) }}"],
) }}
with txns as (

    select
        month,
        txn_type,
        coalesce(category, case when txn_type = 'Income' then 'income' else 'uncategorized' end) as category,
        -- absolute under the sign convention, and consistent with fct_daily_metrics even if it is broken
        -- in the reporting currency (amount_reporting): never two currencies summed as they are
        case when txn_type = 'Expense' then -amount_reporting else amount_reporting end       as abs_amount
    from {{ ref('fct_transactions') }}
    where not is_transfer  -- a move between the user's own accounts is neither income nor expense
    {%- if is_incremental() %}
      and month in {{ changed_months() }}
    {%- endif %}

),

grouped as (

    select
        month,
        category,
        txn_type,
        sum(abs_amount) as total_amount,
        count(*)        as transaction_count
    from txns
    group by month, category, txn_type

)

select
    month,
    category,
    txn_type,
    total_amount,
    transaction_count,
    round(total_amount / transaction_count, 2)                            as avg_amount,
    case when txn_type = 'Expense' then
        round(total_amount / nullif(sum(total_amount) over (partition by month, txn_type), 0), 6)
    end                                                                   as share_of_month_expenses
from grouped
