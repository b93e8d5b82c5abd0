-- One row per calendar day from the first transaction date to 90 days after the last one (the
-- forecast horizon needs calendar features of future days). Every column is a function of the date
-- alone, so it carries no information about transactions and is point-in-time safe by construction.
-- Definitions match titans_assets/lib/ml/features.py::time_features (serving computes the same values):
-- day_of_week 0 = Monday .. 6 = Sunday; paydays are the 1st and the 15th; US federal holidays with
-- the observed-day rule (Saturday -> Friday before, Sunday -> Monday after), Juneteenth from 2021.

{#- A fixed-date federal holiday falls on the date expression `D` (before the observed-day shift).
    (dbt does not allow macros defined inside a model: a template string with D replaced.) -#}
{%- set fixed_holiday -%}
    ((extract(month from D), extract(day from D)) in ((1, 1), (7, 4), (11, 11), (12, 25))
     or (extract(month from D) = 6 and extract(day from D) = 19 and extract(year from D) >= 2021))
{%- endset %}

with bounds as (

    select min(txn_date) as first_day, max(txn_date) + 90 as last_day
    from {{ ref('fct_transactions') }}

),

spine as (

    {{ day_spine('(select first_day from bounds)', '(select last_day from bounds)') }}

),

days as (

    select
        date_day                                                                  as calendar_date,
        cast(extract(isodow from date_day) as integer) - 1                        as day_of_week,
        cast(extract(day from date_day) as integer)                               as day_of_month,
        cast(extract(month from date_day) as integer)                             as month,
        cast(extract(quarter from date_day) as integer)                           as quarter,
        cast(extract(doy from date_day) as integer)                               as day_of_year,
        cast(extract(week from date_day) as integer)                              as week_of_year,
        cast(extract(day from (date_trunc('month', date_day) + interval '1 month - 1 day')) as integer)
                                                                                  as days_in_month,
        cast(extract(doy from (date_trunc('year', date_day) + interval '1 year - 1 day')) as integer)
                                                                                  as days_in_year,
        case
            -- observed fixed-date holidays
            when extract(isodow from date_day) between 1 and 5 and {{ fixed_holiday | replace('D', 'date_day') }} then 1
            when extract(isodow from date_day) = 5 and {{ fixed_holiday | replace('D', '(date_day + 1)') }} then 1
            when extract(isodow from date_day) = 1 and {{ fixed_holiday | replace('D', '(date_day - 1)') }} then 1
            -- Monday holidays: MLK (3rd Mon Jan), Presidents (3rd Mon Feb), Memorial (last Mon May),
            -- Labor (1st Mon Sep), Columbus (2nd Mon Oct)
            when extract(isodow from date_day) = 1 and (
                   (extract(month from date_day) in (1, 2) and extract(day from date_day) between 15 and 21)
                or (extract(month from date_day) = 5 and extract(day from date_day) >= 25)
                or (extract(month from date_day) = 9 and extract(day from date_day) <= 7)
                or (extract(month from date_day) = 10 and extract(day from date_day) between 8 and 14)
            ) then 1
            -- Thanksgiving (4th Thu Nov)
            when extract(isodow from date_day) = 4 and extract(month from date_day) = 11
                 and extract(day from date_day) between 22 and 28 then 1
            else 0
        end                                                                       as is_holiday
    from spine

)

select
    calendar_date,
    day_of_week,
    day_of_month,
    month,
    quarter,
    day_of_year,
    week_of_year,
    (day_of_month - 1) / 7 + 1                                                    as week_of_month,
    days_in_month,
    sin(2 * pi() * day_of_week / 7.0)                                             as dow_sin,
    cos(2 * pi() * day_of_week / 7.0)                                             as dow_cos,
    sin(2 * pi() * (day_of_month - 1) / days_in_month)                            as dom_sin,
    cos(2 * pi() * (day_of_month - 1) / days_in_month)                            as dom_cos,
    sin(2 * pi() * (month - 1) / 12.0)                                            as month_sin,
    cos(2 * pi() * (month - 1) / 12.0)                                            as month_cos,
    sin(2 * pi() * (day_of_year - 1) / days_in_year)                              as doy_sin,
    cos(2 * pi() * (day_of_year - 1) / days_in_year)                              as doy_cos,
    case when day_of_week >= 5 then 1 else 0 end                                  as is_weekend,
    is_holiday,
    case when day_of_week < 5 and is_holiday = 0 then 1 else 0 end                as is_business_day,
    case when day_of_month <= 3 then 1 else 0 end                                 as is_month_start,
    case when day_of_month > days_in_month - 3 then 1 else 0 end                  as is_month_end,
    case when month in (1, 4, 7, 10) and day_of_month <= 3 then 1 else 0 end      as is_quarter_start,
    case when month in (3, 6, 9, 12) and day_of_month > days_in_month - 3 then 1 else 0 end
                                                                                  as is_quarter_end,
    case when day_of_month in (1, 15) then 1 else 0 end                           as is_payday,
    case when day_of_month >= 15 then day_of_month - 15 else day_of_month - 1 end as days_since_payday,
    case when day_of_month < 15 then 15 - day_of_month
         else days_in_month - day_of_month + 1 end                                as days_until_payday,
    days_in_month - day_of_month                                                  as days_to_month_end
from days
