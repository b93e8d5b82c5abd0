-- The balances the banks reported: one row per (account, file, day) whose rows carry a balance (a
-- CAMT.053 / MT940 statement's running balance, proven by its opening and closing balances; a CSV
-- profile's Balance column). The day's closing balance is the balance after the day's last row in
-- the file's own order: statements run oldest first (the highest line), a newest-first export (its
-- first line dated after its last) the other way (the lowest line).
with rows as (

    select account, source_file, line_number, txn_date, cast(balance as numeric(16, 2)) as balance
    from {{ ref('stg_transactions') }}
    where balance is not null

),

direction as (

    select
        source_file,
        min(txn_date) filter (where line_number = first_line) > min(txn_date) filter (where line_number = last_line)
            as newest_first
    from (
        select
            source_file,
            line_number,
            txn_date,
            min(line_number) over (partition by source_file) as first_line,
            max(line_number) over (partition by source_file) as last_line
        from rows
    ) as r
    group by source_file

),

ranked as (

    select
        rows.*,
        row_number() over (
            partition by rows.source_file, rows.txn_date
            order by case when direction.newest_first then rows.line_number else -rows.line_number end
        ) as rank_in_day
    from rows
    inner join direction on direction.source_file = rows.source_file

)

select
    account,
    source_file,
    txn_date   as balance_date,
    line_number,
    balance    as reported_balance
from ranked
where rank_in_day = 1
