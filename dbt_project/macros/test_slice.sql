{#-
  dbt tests on the rows an incremental build replaced (README "Incremental runs").

  The dbt step sets TITANS_DBT_TEST_SLICE=1 when this build is an incremental build of every
  incremental model and the build before it ended complete, i.e. every test passed on the tables it
  left (titans_assets/lib/incremental.dbt_test_scope). Then the row-local generic tests of
  fct_transactions (not_null, accepted_values, relationships) read only the rows this build replaced
  (int_transaction_changes, side 'new'); every other row is one they passed. So does `unique` on
  transaction_id, exactly: the filter is on the key itself, so it keeps every row of the table that
  shares a key with a replaced row, and a new duplicate has one. Every other test reads whole tables
  (fct_transactions' tests run after int_transaction_changes is built; tests of the models upstream
  of it would read the previous build's). Without the variable, or at parse time: dbt's own macro.
-#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- set slice = titans_test_slice() -%}
    {%- if slice -%}
        {%- set where = slice if not where else '(' ~ where ~ ') and ' ~ slice -%}
    {%- endif -%}
    {%- if where -%}
        {%- do return('(select * from ' ~ relation ~ ' where ' ~ where ~ ') dbt_subquery') -%}
    {%- endif -%}
    {%- do return(relation) -%}
{%- endmacro %}

{#- The filter of the running test, or none (see above). -#}
{% macro titans_test_slice() -%}
    {%- if not execute or env_var('TITANS_DBT_TEST_SLICE', '0') != '1' -%}
        {%- do return(none) -%}
    {%- endif -%}
    {%- set generic = (model.get('test_metadata') or {}).get('name') -%}
    {%- set on_key = generic == 'unique' and model.get('column_name') == 'transaction_id' -%}
    {%- if (generic not in ['not_null', 'accepted_values', 'relationships'] and not on_key)
          or model.get('attached_node') != 'model.' ~ project_name ~ '.fct_transactions' -%}
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
