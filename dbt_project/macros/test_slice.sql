{#-
  dbt tests on the rows an incremental build replaced (README "Incremental runs").

  The dbt step sets TITANS_DBT_TEST_SLICE=1 when this build is an incremental build of every
  incremental model and the build before it ended complete, i.e. every test passed on the tables it
  left (titans_assets/lib/incremental.dbt_test_scope). Then the row-local generic tests of
  fct_transactions (not_null, accepted_values, relationships) read only the rows this build replaced
  (int_transaction_changes, side 'new'); every other row is one they passed. So does `unique` on
  transaction_id, exactly: the filter is on the key itself, so it keeps every row of the table that
  shares a key with a replaced row, and a new duplicate has one. The row-local tests of
  int_transactions_deduped and int_transfer_hints read their rows in the dedup slice (int_dedup_slice,
  built before them: the rows this build replaced there; found through the indexes on txn_date and
  bank_txn_id): they block every model downstream, and each costs ~0.3 s per 1M rows when whole.
  (Their transaction_id is unique by a unique index, checked on every write: no test.) Every other
  test reads whole tables (tests of the models upstream of the slices would read the previous
  build's). Without the variable, or at parse time: dbt's own macro.
-#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- set slice = titans_test_slice(relation) -%}
    {%- if slice -%}
        {%- set where = slice if not where else '(' ~ where ~ ') and ' ~ slice -%}
    {%- endif -%}
    {#- `offset 0` keeps a slice's semi-join planned on its own (a hash join on the slice's ids):
        pulled into the test's `group by`, the planner sorts the whole table to merge it (1M rows:
        1.1-1.5 s against 0.5 s) -#}
    {%- if where -%}
        {%- do return('(select * from ' ~ relation ~ (' as sliced' if slice else '') ~ ' where ' ~ where
                      ~ (' offset 0' if slice else '') ~ ') dbt_subquery') -%}
    {%- endif -%}
    {%- do return(relation) -%}
{%- endmacro %}

{#- The filter of the running test on `relation` (read as `sliced`), or none (see above). -#}
{% macro titans_test_slice(relation) -%}
    {%- if not execute or env_var('TITANS_DBT_TEST_SLICE', '0') != '1' -%}
        {%- do return(none) -%}
    {%- endif -%}
    {%- set generic = (model.get('test_metadata') or {}).get('name') -%}
    {%- set row_local = generic in ['not_null', 'accepted_values', 'relationships'] -%}
    {%- set on_key = generic == 'unique' and model.get('column_name') == 'transaction_id' -%}
    {%- set attached = (model.get('attached_node') or '').split('.')[-1] -%}
    {%- if attached in ['int_transactions_deduped', 'int_transfer_hints'] and row_local -%}
        {%- set dedup = adapter.get_relation(database=target.database, schema='intermediate',
                                             identifier='int_dedup_slice') -%}
        {%- do return(in_dedup_slice('sliced', dedup) if dedup is not none else none) -%}
    {%- endif -%}
    {%- if attached != 'fct_transactions' or not (row_local or on_key) -%}
        {%- do return(none) -%}
    {%- endif -%}
    {%- set changes = adapter.get_relation(database=target.database, schema='intermediate',
                                           identifier='int_transaction_changes') -%}
    {%- if changes is none -%}
        {%- do return(none) -%}
    {%- endif -%}
    {#- a row without an id is no replaced row's, but a not_null test must see it (the index finds it) -#}
    {%- do return("(transaction_id = any(array(select transaction_id from " ~ changes
                  ~ " where side = 'new')) or transaction_id is null)") -%}
{%- endmacro %}
