{#
  Text normalization shared by the intermediate models. Each macro dispatches, so another adapter can
  override it (macro `<adapter>__normalize_label`) without touching the models; the default
  implementation uses PostgreSQL regular expressions (also valid on Redshift).
#}

{#- normalize_label: 'Meals & Entertainment ' -> 'meals_entertainment', ' Credit-Card' -> 'credit_card'.
    lower + trim, every run of non-alphanumeric characters (spaces, hyphens, '&', '/', repeated
    underscores) becomes one underscore, leading/trailing underscores dropped, '' -> null. -#}
{% macro normalize_label(expr) -%}
    {{ return(adapter.dispatch('normalize_label', 'titans')(expr)) }}
{%- endmacro %}

{% macro default__normalize_label(expr) -%}
    nullif(trim(both '_' from regexp_replace(lower(trim({{ expr }})), '[^[:alnum:]]+', '_', 'g')), '')
{%- endmacro %}


{#- clean_name: a readable merchant/counterparty name.
    lower + trim, internal whitespace collapsed to one space, '' -> null. -#}
{% macro clean_name(expr) -%}
    {{ return(adapter.dispatch('clean_name', 'titans')(expr)) }}
{%- endmacro %}

{% macro default__clean_name(expr) -%}
    nullif(trim(regexp_replace(lower({{ expr }}), '[[:space:]]+', ' ', 'g')), '')
{%- endmacro %}


{#- clean_description: a merchant guess from a bank description when there is no reference.
    'STARBUCKS #1234  Seattle*WA' -> 'starbucks seattle wa': lower, punctuation -> space,
    tokens made only of digits dropped (store numbers, card digits), whitespace collapsed, '' -> null. -#}
{% macro clean_description(expr) -%}
    {{ return(adapter.dispatch('clean_description', 'titans')(expr)) }}
{%- endmacro %}

{% macro default__clean_description(expr) -%}
    nullif(trim(regexp_replace(regexp_replace(regexp_replace(
        lower({{ expr }}),
        '[^[:alnum:]&'']+', ' ', 'g'),
        '\m[0-9]+\M', ' ', 'g'),
        '[[:space:]]+', ' ', 'g')), '')
{%- endmacro %}

{#- True when `column` (text, already lower-cased) contains any of the literal `words` (no % or _). -#}
{% macro contains_any(column, words) -%}
{{ column }} like any (array[{% for w in words | unique %}'%{{ w }}%'{{ "," if not loop.last }}{% endfor %}])
{%- endmacro %}
