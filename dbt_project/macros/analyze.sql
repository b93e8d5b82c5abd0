{#-
  A post-hook (dbt_project.yml): ANALYZE a table this build wrote whole, i.e. every `table` model and
  an `incremental` one on its first or full-refresh build. PostgreSQL has no statistics for a table
  created moments ago (autovacuum gets to it within a minute or so), and the planner's defaults pick
  poor plans for what reads it next: the models downstream in the same build, and the next incremental
  build's slices. 1M-row warehouse, a 1,000-row export added then removed right after a full refresh:
  dbt 29.1-32.1 s without, 17.8-22.9 s with this hook (docs/benchmarks.md). Views have none to take.
-#}
{% macro analyze_rebuilt_table() -%}
    {%- set materialized = config.get('materialized') -%}
    {%- if materialized == 'table' or (materialized == 'incremental' and not is_incremental()) -%}
        analyze {{ this }}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}
