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

-- every model's credit of each click, summed per (order, referrer) in one aggregation; the five models are then
-- unpivoted. In linear, position_based and time_decay every click has credit > 0, so a referrer's latest credited
-- click is its latest click; in last_click / first_click it is the order's last / first click.
per_referrer as (
    select
        partner_id,
        order_id,
        referrer_partner_id,
        sum(case when pos = n then 1 else 0 end::numeric)                     as last_click,
        sum(case when pos = 1 then 1 else 0 end::numeric)                     as first_click,
        sum(1::numeric / n)                                                   as linear,
        sum(case
                when n = 1 then 1::numeric
                when n = 2 then 0.5
                when pos = 1 or pos = n then 0.4
                else 0.2 / (n - 2)
            end)                                                              as position_based,
        sum(decay_share::numeric)                                             as time_decay,
        (array_agg(network_id order by pos desc) filter (where pos = n))[1]   as last_network_id,
        (array_agg(click_id order by pos desc) filter (where pos = n))[1]     as last_click_id,
        (array_agg(network_id order by pos desc) filter (where pos = 1))[1]   as first_network_id,
        (array_agg(click_id order by pos desc) filter (where pos = 1))[1]     as first_click_id,
        (array_agg(network_id order by pos desc))[1]                          as latest_network_id,
        (array_agg(click_id order by pos desc))[1]                            as latest_click_id
    from weighted
    group by partner_id, order_id, referrer_partner_id
)

select
    r.partner_id,
    r.order_id,
    m.attribution_model,
    r.referrer_partner_id,
    trim_scale(m.credit)  as credit,
    m.network_id,
    m.click_id
from per_referrer as r
cross join lateral (
    values
        ('last_click'::text, r.last_click, r.last_network_id, r.last_click_id),
        ('first_click', r.first_click, r.first_network_id, r.first_click_id),
        ('linear', r.linear, r.latest_network_id, r.latest_click_id),
        ('position_based', r.position_based, r.latest_network_id, r.latest_click_id),
        ('time_decay', r.time_decay, r.latest_network_id, r.latest_click_id)
) as m (attribution_model, credit, network_id, click_id)
where m.credit > 0
