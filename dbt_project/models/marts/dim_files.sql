-- One row per landed file: loader counts plus what the file contributed after deduplication.
with files as (

    select * from {{ ref('stg_files') }}

),

file_dates as (

    select source_file, min(txn_date) as first_txn_date, max(txn_date) as last_txn_date
    from {{ ref('stg_transactions') }}
    group by source_file

),

kept as (

    select source_file, count(*) as transactions_kept
    from {{ ref('int_transactions_deduped') }}
    group by source_file

)

select
    files.source_file,
    files.account,
    files.rows_read,
    files.rows_loaded,
    files.rows_quarantined,
    coalesce(kept.transactions_kept, 0) as transactions_kept,
    file_dates.first_txn_date,
    file_dates.last_txn_date,
    files.size_bytes,
    files.sha256,
    files.loaded_at
from files
left join file_dates on files.source_file = file_dates.source_file
left join kept on files.source_file = kept.source_file
