-- §6 click credit of every model over the same eligible clicks, summed per (order, model, referrer).
-- Clicks are ordered oldest first by (clicked_at, length(click_id), click_id, network_id), so the last one is
-- the §6.3 last-click winner (ties to the greatest click_id in (length, text) order).
--   last_click / first_click: the last / first click gets 1;   linear: 1/n each;
--   position_based: one click 1, two clicks 0.5 each, else 0.4 first, 0.4 last, 0.2 shared by the middle;
--   time_decay: weight 2^(-age / half-life), age = t - clicked_at, normalised per order.
{%- set half_life_seconds = 7 * 24 * 3600 %}
{{ config(materialized='incremental', incremental_strategy='append', pre_hook="{{ delete_changed_orders() }}",
          indexes=[{'columns': ['partner_id', 'order_id']}]) }}
-- depends_on: {{ ref('int_orders__changed') }}
with ranked as (
    select
        c.partner_id,
        c.order_id,
        c.network_id,
        c.click_id,
        c.referrer_partner_id,
        row_number() over w_order                                         as pos,
        count(*) over (partition by c.partner_id, c.order_id)             as n,
        power(2::float8, -extract(epoch from (c.ordered_at - c.clicked_at))::float8 / {{ half_life_seconds }})
                                                                          as decay_weight
    from {{ ref('int_order_eligible_clicks') }} as c
    where true {{ only_changed_orders('c.') }}
    window w_order as (
        partition by c.partner_id, c.order_id
        order by c.clicked_at, length(c.click_id), c.click_id, c.network_id
    )
),

weighted as (
    select *, decay_weight / sum(decay_weight) over (partition by partner_id, order_id) as decay_share
    from ranked
),

per_click as (
    select *, 'last_click'::text as attribution_model, case when pos = n then 1 else 0 end::numeric as credit
    from weighted
    union all
    select *, 'first_click'::text, case when pos = 1 then 1 else 0 end::numeric
    from weighted
    union all
    select *, 'linear'::text, 1::numeric / n
    from weighted
    union all
    select *, 'position_based'::text,
        case
            when n = 1 then 1::numeric
            when n = 2 then 0.5
            when pos = 1 or pos = n then 0.4
            else 0.2 / (n - 2)
        end
    from weighted
    union all
    select *, 'time_decay'::text, decay_share::numeric
    from weighted
)

select
    partner_id,
    order_id,
    attribution_model,
    referrer_partner_id,
    trim_scale(sum(credit))                                                        as credit,
    -- the referrer's latest credited click stands for the row (for last_click: the winning click)
    (array_agg(network_id order by pos desc) filter (where credit > 0))[1]         as network_id,
    (array_agg(click_id order by pos desc) filter (where credit > 0))[1]           as click_id
from per_click
group by partner_id, order_id, attribution_model, referrer_partner_id
having sum(credit) > 0
