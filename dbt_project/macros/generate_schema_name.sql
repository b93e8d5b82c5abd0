{#
  Models land in exactly the schema they configure (`staging`, `intermediate`, `marts`, `seeds`),
  not in dbt's default `<target_schema>_<custom_schema>`. Nodes without a custom schema use the
  profile's schema (`analytics`).
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
