-- Every row of fct_transactions with the category it ends up with and where that came from.
-- Precedence (the one place it is decided): the user's correction > the export's label > a rule
-- (rules.yaml or an accepted learned rule; rules/category_rules matched them) > the category model's
-- prediction > none. Corrections are read from app.category_corrections as they are now (the user's
-- table: no build rewrites it). `category` is normalized for matching like every label in the marts
-- (normalize_label, then the alias seed); `category_display` is the spelling its source wrote.
-- Its own Dagster definition (defs/transform/enriched.py): it is downstream of the predictions,
-- which are downstream of models trained on the other dbt models.
{%- set own = ['category', 'category_raw'] %}
{%- set columns = adapter.get_columns_in_relation(ref('fct_transactions')) if execute else [] %}
with txns as (

    select * from {{ ref('fct_transactions') }}

),

corrections as (

    select transaction_id, category from app.category_corrections

),

rule_hits as (

    -- the rules matching one transaction agree on its category (a conflict fails rules/category_rules)
    select transaction_id, min(rule_id) as rule_id, min(category) as category
    from {{ source('rules', 'category_rule_matches') }}
    group by transaction_id

),

predictions as (

    select transaction_id, category, confidence, model_version
    from {{ source('predictions', 'transaction_categories') }}
    where category is not null

),

category_aliases as (

    select {{ normalize_label('alias') }} as alias, category
    from {{ ref('category_aliases') }}

),

decided as (

    select
        txns.transaction_id,
        case when corrections.category is not null then 'correction'
             when txns.category is not null then 'export'
             when rule_hits.category is not null then 'rule'
             when predictions.category is not null then 'model'
             else 'none' end                                          as category_source,
        coalesce(corrections.category, txns.category_raw, txns.category,
                 rule_hits.category, predictions.category)            as category_display,
        txns.category                                                 as export_category,
        rule_hits.rule_id                                             as rule_id,
        predictions.confidence                                        as model_confidence,
        predictions.model_version                                     as predicted_by
    from txns
    left join corrections on corrections.transaction_id = txns.transaction_id
    left join rule_hits on rule_hits.transaction_id = txns.transaction_id
    left join predictions on predictions.transaction_id = txns.transaction_id

),

labelled as (

    select decided.*, {{ normalize_label('decided.category_display') }} as label
    from decided

)

select
    {%- for column in columns if column.name not in own %}
    txns.{{ adapter.quote(column.name) }},
    {%- endfor %}
    case when labelled.category_source = 'export' then labelled.export_category
         else coalesce(category_aliases.category, labelled.label) end  as category,
    labelled.category_display,
    labelled.category_source,
    case when labelled.category_source in ('export', 'correction', 'rule') then 1.0
         when labelled.category_source = 'model' then labelled.model_confidence
    end                                                                 as category_confidence,
    case when labelled.category_source = 'rule' then labelled.rule_id end as category_rule_id,
    case when labelled.category_source = 'model' then labelled.predicted_by end as model_version,
    txns.category                                                       as export_category,
    txns.category_raw                                                   as export_category_raw
from txns
join labelled on labelled.transaction_id = txns.transaction_id
left join category_aliases on category_aliases.alias = labelled.label
