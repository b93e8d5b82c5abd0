{#
  day_spine(start_date, end_date): one row per calendar day, column `date_day`, both ends included.
  start_date / end_date are SQL expressions (scalar subqueries are fine). No rows when either is null
  (an empty ledger gives an empty spine).
  PostgreSQL uses generate_series; another adapter needs its own `<adapter>__day_spine`.
#}
{% macro day_spine(start_date, end_date) -%}
    {{ return(adapter.dispatch('day_spine', 'titans')(start_date, end_date)) }}
{%- endmacro %}

{% macro postgres__day_spine(start_date, end_date) -%}
    select cast(g.day_ts as date) as date_day
    from generate_series(
        cast({{ start_date }} as timestamp),
        cast({{ end_date }} as timestamp),
        interval '1 day'
    ) as g(day_ts)
{%- endmacro %}

{% macro default__day_spine(start_date, end_date) -%}
    {{ exceptions.raise_compiler_error(
        "day_spine has no implementation for adapter '" ~ adapter.type() ~ "': add macro "
        ~ adapter.type() ~ "__day_spine in dbt_project/macros/day_spine.sql") }}
{%- endmacro %}
