-- Credit rows of every attribution model per attributable order (§6): a code gives its partner credit 1 in every
-- model; otherwise the model's click credit per referrer; otherwise organic (referrer null, credit 1). Test and
-- cancelled orders get no rows (§6.1). Credits are rounded to 10 decimals and the last referrer (by id) takes
-- the remainder, so every (order, model) sums to exactly 1.
{%- set models = ['last_click', 'first_click', 'linear', 'position_based', 'time_decay'] %}
{%- if var('attribution_model') not in models %}
    {{ exceptions.raise_compiler_error(
        "attribution_model `" ~ var('attribution_model') ~ "` is unknown; use one of " ~ models | join(', ')) }}
{%- endif %}
{{ config(materialized='incremental', incremental_strategy='append', pre_hook="{{ delete_changed_orders() }}",
          indexes=[{'columns': ['partner_id', 'order_id']}]) }}
-- depends_on: {{ ref('int_orders__changed') }}

with orders as (
    select partner_id, order_id from {{ ref('int_orders__enriched') }} as o
    where is_attributable {{ only_changed_orders('o.') }}
),

models as (
    select unnest(array['{{ models | join("', '") }}'])::text as attribution_model
),

code as (
    select * from {{ ref('int_order_code_attribution') }} as a
    where true {{ only_changed_orders('a.') }}
),

clicks as (
    select * from {{ ref('int_order_click_credits') }} as c
    where true {{ only_changed_orders('c.') }}
),

candidates as (
    select o.partner_id, o.order_id, m.attribution_model, code.referrer_partner_id, 'code'::text as attribution_reason,
           1::numeric as credit, null::text as network_id, null::text as click_id, code.referral_code, code.code_source
    from orders as o
    inner join code on code.partner_id = o.partner_id and code.order_id = o.order_id
    cross join models as m
    union all
    select c.partner_id, c.order_id, c.attribution_model, c.referrer_partner_id, 'click', c.credit,
           c.network_id, c.click_id, null, null
    from clicks as c
    where not exists (select 1 from code where code.partner_id = c.partner_id and code.order_id = c.order_id)
    union all
    select o.partner_id, o.order_id, m.attribution_model, null, 'organic', 1::numeric, null, null, null, null
    from orders as o
    cross join models as m
    where not exists (select 1 from code where code.partner_id = o.partner_id and code.order_id = o.order_id)
      and not exists (select 1 from clicks as c where c.partner_id = o.partner_id and c.order_id = o.order_id)
),

rounded as (
    select
        *,
        round(credit, 10) as credit_10,
        row_number() over (
            partition by partner_id, order_id, attribution_model order by referrer_partner_id desc nulls first
        ) as rank_from_last
    from candidates
)

select
    partner_id,
    order_id,
    attribution_model,
    referrer_partner_id,
    attribution_reason,
    trim_scale(case
        when rank_from_last = 1
            then 1 - (sum(credit_10) over (partition by partner_id, order_id, attribution_model) - credit_10)
        else credit_10
    end)                                          as credit,
    -- position of the row in (referrer) order: money columns are allocated cumulatively in this order
    row_number() over (
        partition by partner_id, order_id, attribution_model order by referrer_partner_id nulls last
    )                                             as row_position,
    network_id,
    click_id,
    referral_code,
    code_source
from rounded
