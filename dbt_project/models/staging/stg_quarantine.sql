-- CSV records the loader could not parse, with the reason. Exposed so quarantine can be reported on.
select
    source_file,
    line_number,
    raw_line,
    reason,
    quarantined_at
from {{ source('raw', 'quarantine') }}
