-- §6 click credit: each model's credit per referrer over an order's eligible clicks (int_order_eligible_clicks), for
-- the attributable orders no code credits (§6.2 code beats click); one row per credited (order, model, referrer).
--   Clicks are ordered oldest first by (clicked_at, length(click_id), click_id, network_id): the last one is the
--   §6.3 last-click winner. last_click / first_click: the last / first click gets 1; linear: 1/n each;
--   position_based: one click 1, two 0.5 each, else 0.4 first, 0.4 last, 0.2 shared by the middle;
--   time_decay: weight 2^(-age / 7 days), age = t - clicked_at, normalised per order.
--   Split credits are rounded to 10 decimals, the last referrer (by id) taking the remainder, so every (order, model)
--   sums to exactly 1; cum_credit (the referrers up to this one) is what int_order_attribution allocates cents by.
-- Fast: the clicks are sorted once (by order and click time) and every model reads that order. Ephemeral: compiled
-- into int_order_attribution's statement, scoped to the orders its run recomputes.
{{ config(materialized='ephemeral') }}
-- depends_on: {{ ref('int_orders__changed') }}
{%- set split_models = ['linear', 'position_based', 'time_decay'] %}
{%- set half_life_seconds = 7 * 24 * 3600 %}
with ranked_clicks as (
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
    from {{ changed_orders_of(ref('int_order_eligible_clicks'), 'c', is_incremental_for('int_order_attribution')) }}
    where not exists (
        select 1 from {{ ref('int_order_code_attribution') }} as a
        where a.partner_id = c.partner_id and a.order_id = c.order_id
    )
    window w_order as (
        partition by c.partner_id, c.order_id
        order by c.clicked_at, length(c.click_id), c.click_id, c.network_id
    )
),

-- every model's credit of each referrer: the last / first click's referrer gets 1 in last_click / first_click (one
-- row per order has pos = n, one has pos = 1); in linear, position_based and time_decay every click has credit > 0, so
-- every referrer of the order is credited, with its latest click
referrer_clicks as (
    select
        partner_id,
        order_id,
        referrer_partner_id,
        bool_or(pos = n)                                                      as has_last_click,
        bool_or(pos = 1)                                                      as has_first_click,
        -- a sum of equal numerics is their count times one of them (numeric arithmetic is exact)
        count(*) * (1::numeric / min(n))                                      as linear,
        case
            when min(n) = 1 then 1::numeric
            when min(n) = 2 then count(*) * 0.5
            else count(*) filter (where pos = 1 or pos = n) * 0.4
                 + count(*) filter (where pos > 1 and pos < n) * (0.2 / (min(n) - 2))
        end                                                                   as position_based,
        sum(decay_share::numeric)                                             as time_decay,
        max(network_id) filter (where pos = n)                                as last_network_id,
        max(click_id) filter (where pos = n)                                  as last_click_id,
        max(network_id) filter (where pos = 1)                                as first_network_id,
        max(click_id) filter (where pos = 1)                                  as first_click_id,
        (array_agg(network_id order by pos desc))[1]                          as latest_network_id,
        (array_agg(click_id order by pos desc))[1]                            as latest_click_id
    from (
        select *, decay_weight / sum(decay_weight) over (partition by partner_id, order_id) as decay_share
        from ranked_clicks
    ) as weighted_clicks
    group by partner_id, order_id, referrer_partner_id
),

-- split credits rounded to 10 decimals; *_cum_10 is the rounded credit of the referrers up to this one
rounded as (
    select
        *,
        row_number() over w_referrers                                         as referrer_position,
        count(*) over w_order                                                 as referrers
        {%- for model in split_models %},
        round({{ model }}, 10)                                                as {{ model }}_10,
        sum(round({{ model }}, 10)) over w_order                              as {{ model }}_sum_10,
        sum(round({{ model }}, 10)) over w_referrers                          as {{ model }}_cum_10
        {%- endfor %}
    from referrer_clicks
    window
        w_order as (partition by partner_id, order_id),
        w_referrers as (w_order order by referrer_partner_id rows unbounded preceding)
)

-- one row per credited (order, model, referrer): a constant list of models joined to each referrer row and the
-- model's columns picked by name (a lateral VALUES list would re-initialise its expressions for every row)
select
    r.partner_id,
    r.order_id,
    m.attribution_model,
    r.referrer_partner_id,
    case
        when m.attribution_model in ('last_click', 'first_click') or r.referrers = 1 then 1::numeric
        {%- for model in split_models %}
        when m.attribution_model = '{{ model }}' then trim_scale(case
            when r.referrer_position = r.referrers then 1 - (r.{{ model }}_sum_10 - r.{{ model }}_10)
            else r.{{ model }}_10 end)
        {%- endfor %}
    end                                                                   as credit,
    case
        when m.attribution_model in ('last_click', 'first_click') or r.referrer_position = r.referrers then 1::numeric
        {%- for model in split_models %}
        when m.attribution_model = '{{ model }}' then r.{{ model }}_cum_10
        {%- endfor %}
    end                                                                   as cum_credit,
    case when m.attribution_model in ('last_click', 'first_click') then 1::bigint else r.referrer_position end
                                                                          as row_position,
    case m.attribution_model
        when 'last_click' then r.last_network_id
        when 'first_click' then r.first_network_id
        else r.latest_network_id
    end                                                                   as network_id,
    case m.attribution_model
        when 'last_click' then r.last_click_id
        when 'first_click' then r.first_click_id
        else r.latest_click_id
    end                                                                   as click_id
from rounded as r
cross join (values ('{{ attribution_models() | join("'), ('") }}')) as m (attribution_model)
where case m.attribution_model
          when 'last_click' then r.has_last_click
          when 'first_click' then r.has_first_click
          else true
      end
