-- One row per landed file, as recorded by the loader.
select
    source_file,
    account,
    size_bytes,
    sha256,
    rows_read,
    rows_loaded,
    rows_quarantined,
    header,
    loaded_at
from {{ source('raw', 'files') }}
