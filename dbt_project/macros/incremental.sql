{#-
  Incremental builds (README "Incremental runs"). A run recomputes only the slice of the data its
  changed files touch, and deletes + inserts exactly that slice in each incremental model:

    changed file  a file whose (source_file, loaded_at) in raw.files differs from what the marts were
                  last built from (int_file_footprints): new, replaced or removed;
    int_changes   the footprint (account, txn_date, bank_txn_id) of every changed file, old rows (from
                  int_file_footprints) and new rows (from stg_transactions);
    dedup slice   the days (account, txn_date) of int_changes, for rows without a bank id, and the bank
                  ids (account, bank_txn_id) of int_changes plus every bank id present on those days:
                  deduplication only compares rows within one (account, day) or one (account, bank id),
                  so recomputing these groups whole is exact (int_dedup_slice);
    amounts       the absolute amounts whose transfer pairing is recomputed: pairing compares rows of
                  one amount only, so recomputing whole amounts is exact (int_transfer_slice): those
                  of the dedup slice's rows before and after, and of the rows overrides name;
    transactions  the transaction ids whose fct_transactions row can differ: the dedup slice's rows
                  before and after, and every row whose transfer pairing changed (int_transaction_changes).

  A change to the project itself (models, macros, seeds, TITANS_REPORTING_CURRENCY) makes the next
  build a full refresh (titans_assets/lib/incremental.py): the slices only follow data.
-#}

{#- `slice`: the int_dedup_slice relation, for a caller that cannot ref it (a test).
    The first line is an exact superset of the rest: its days and bank ids are the slice's own, so the
    indexes on txn_date and bank_txn_id find the candidate rows (a bitmap OR of two index scans) and
    the exact test below runs on those only. Without it a read of the slice scans all rows whatever
    the slice holds: 0.48 s per 1M rows on an empty slice, 0.4 ms with it. Where the slice does not
    exist yet (`dbt docs generate` or `dbt compile` on an empty warehouse: SQL that never runs before
    the slice is built) there is nothing to count: the exact test alone. -#}
{% macro in_dedup_slice(alias, slice=none) -%}
    {%- set slice = slice or ref('int_dedup_slice') -%}
    {%- set few = var('titans_few_keys', 400) -%}
    (
    {%- if not execute or load_relation(slice) is not none %}
     ({{ in_few(alias ~ '.txn_date', 'select distinct txn_date from ' ~ slice ~ ' where bank_txn_id is null', few) }}
      or {{ in_few(alias ~ '.bank_txn_id', 'select distinct bank_txn_id from ' ~ slice ~ ' where bank_txn_id is not null', few) }})
     and
    {%- endif %} (({{ alias }}.bank_txn_id is null and exists (
        select 1 from {{ slice }} as dedup_slice
        where dedup_slice.bank_txn_id is null and dedup_slice.account = {{ alias }}.account and dedup_slice.txn_date = {{ alias }}.txn_date))
     or ({{ alias }}.bank_txn_id is not null and exists (
        select 1 from {{ slice }} as dedup_slice
        where dedup_slice.bank_txn_id is not null and dedup_slice.account = {{ alias }}.account and dedup_slice.bank_txn_id = {{ alias }}.bank_txn_id))))
{%- endmacro %}

{% macro in_transfer_slice(amount) -%}
    {{ amount }} in (select amount from {{ ref('int_transfer_slice') }})
{%- endmacro %}

{#- A pre-hook: in an incremental run, delete the rows `predicate` names (written against alias t). -#}
{% macro delete_slice(predicate) -%}
    {%- if is_incremental() -%}
    delete from {{ this }} as t where {{ predicate }}
    {%- else -%}
    select 1
    {%- endif -%}
{%- endmacro %}

{#- The existing relation of a model (this model's schema by default), or none (first build, or dropped). -#}
{% macro existing_relation(name, schema=none) -%}
    {{ return(adapter.get_relation(database=this.database, schema=schema or this.schema, identifier=name)) }}
{%- endmacro %}

{#- The days and months whose fct_transactions rows an incremental run replaced (before and after). -#}
{% macro changed_days() -%}
    (select distinct txn_date from {{ ref('int_transaction_changes') }})
{%- endmacro %}

{% macro changed_months() -%}
    (select distinct cast({{ dbt.date_trunc('month', 'txn_date') }} as date) from {{ ref('int_transaction_changes') }})
{%- endmacro %}

{#- fct_daily_metrics' days to rebuild: from the first changed day on, and any outside the new range. -#}
{% macro stale_daily_metrics(alias) -%}
    ({{ alias }}.metric_date >= (select min(txn_date) from {{ ref('int_transaction_changes') }})
     or {{ alias }}.metric_date < (select min(txn_date) from {{ ref('fct_transactions') }})
     or {{ alias }}.metric_date > (select max(txn_date) from {{ ref('fct_transactions') }}))
{%- endmacro %}

{#- `column` is one of the values `query` (one column) returns. For a few values, `= any(array(...))`:
    a scan applies it before computing anything else, where a semi-join filters only after the scan
    has computed every column (stg_transactions trims and lower-cases ~15 of them: reading one changed
    1,000-row file out of 1M rows took 0.82 s that way, 0.07 s this way). It compares each row with
    every value, though (1,000 values: 6.7 s against 0.14 s), so past 32 values (var
    titans_few_values; `few` when given), the semi-join. Where an index holds the column, the values
    are the index scan's keys instead, one lookup each (in_dedup_slice). -#}
{% macro in_few(column, query, few=none) -%}
    {%- set values = run_query('select count(*) from (' ~ query ~ ') as q').columns[0].values()[0]
                     if execute else 0 -%}
    {%- if values <= (var('titans_few_values', 32) if few is none else few) -%}
    {{ column }} = any(array({{ query }}))
    {%- else -%}
    {{ column }} in ({{ query }})
    {%- endif -%}
{%- endmacro %}

{#- `column` names one of the changed files (int_changes), in an incremental run (else: false). -#}
{% macro in_changed_files(column) -%}
    {%- set query = 'select distinct source_file from ' ~ ref('int_changes') -%}
    {{ in_few(column, query) if is_incremental() else 'false' }}
{%- endmacro %}
