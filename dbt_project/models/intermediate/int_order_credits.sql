-- Credit rows of every attribution model per attributable order (§6): a code gives its partner credit 1 in every
-- model; otherwise the model's click credit per referrer; otherwise organic (referrer null, credit 1). Test and
-- cancelled orders get no rows (§6.1). Credits are rounded to 10 decimals and the last referrer (by id) takes
-- the remainder, so every (order, model) sums to exactly 1.
{%- set models = attribution_models() %}
{%- if var('attribution_model') not in models %}
    {{ exceptions.raise_compiler_error(
        "attribution_model `" ~ var('attribution_model') ~ "` is unknown; use one of " ~ models | join(', ')) }}
{%- endif %}
{{ config(materialized='incremental', incremental_strategy='append', pre_hook="{{ delete_changed_orders() }}",
          indexes=[{'columns': ['partner_id', 'order_id']}]) }}
-- depends_on: {{ ref('int_orders__changed') }}

-- One pass per order: the code (if any) comes along with the order; click rows are read straight from their table (an
-- index lookup per recomputed order in an incremental run) rather than from a materialised CTE; the two orderings of
-- the rows of an (order, model) - remainder row and money-allocation position - are one sort, read both ways.
with orders as (
    select o.partner_id, o.order_id, a.referrer_partner_id as code_referrer, a.referral_code, a.code_source
    from {{ ref('int_orders__enriched') }} as o
    left join {{ ref('int_order_code_attribution') }} as a on a.partner_id = o.partner_id and a.order_id = o.order_id
    where o.is_attributable {{ only_changed_orders('o.') }}
),

models as (
    select unnest(array['{{ models | join("', '") }}'])::text as attribution_model
),

candidates as (
    select o.partner_id, o.order_id, m.attribution_model, o.code_referrer as referrer_partner_id,
           'code'::text as attribution_reason, 1::numeric as credit, null::text as network_id, null::text as click_id,
           o.referral_code, o.code_source
    from orders as o
    cross join models as m
    where o.code_referrer is not null
    union all
    select c.partner_id, c.order_id, c.attribution_model, c.referrer_partner_id, 'click', c.credit,
           c.network_id, c.click_id, null, null
    from {{ ref('int_order_click_credits') }} as c
    inner join orders as o on o.partner_id = c.partner_id and o.order_id = c.order_id
    where o.code_referrer is null
    union all
    select o.partner_id, o.order_id, m.attribution_model, null, 'organic', 1::numeric, null, null, null, null
    from orders as o
    cross join models as m
    where o.code_referrer is null
      and not exists (
          select 1 from {{ ref('int_order_click_credits') }} as c
          where c.partner_id = o.partner_id and c.order_id = o.order_id
      )
),

rounded as (
    select
        *,
        round(credit, 10) as credit_10,
        row_number() over w_from_last                       as rank_from_last,
        count(*) over w_order_model                         as n_rows,
        sum(round(credit, 10)) over w_order_model           as sum_credit_10
    from candidates
    window
        w_order_model as (partition by partner_id, order_id, attribution_model),
        -- referrers are distinct within an (order, model), so this order read backwards is `referrer nulls last`
        w_from_last as (w_order_model order by referrer_partner_id desc nulls first)
)

select
    partner_id,
    order_id,
    attribution_model,
    referrer_partner_id,
    attribution_reason,
    trim_scale(case
        when rank_from_last = 1 then 1 - (sum_credit_10 - credit_10)
        else credit_10
    end)                                          as credit,
    -- position of the row in (referrer nulls last) order: money columns are allocated cumulatively in this order
    n_rows - rank_from_last + 1                   as row_position,
    network_id,
    click_id,
    referral_code,
    code_source
from rounded
