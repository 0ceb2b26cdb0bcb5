-- Attribution rows of every model per attributable order (§6), with the contract in effect and, for the configured
-- model only, the commission (§6 Commission) at full precision, rounded to cents once per order and referrer.
--   Credit: a code gives its partner credit 1 in every model (§6.2 code beats click); otherwise each model's click
--   credit per referrer over the order's eligible clicks (int_order_eligible_clicks); otherwise organic (referrer
--   null, credit 1). Test and cancelled orders get no rows (§6.1).
--   Click credit: clicks are ordered oldest first by (clicked_at, length(click_id), click_id, network_id), so the
--   last one is the §6.3 last-click winner (ties to the greatest click_id in (length, text) order).
--     last_click / first_click: the last / first click gets 1;   linear: 1/n each;
--     position_based: one click 1, two clicks 0.5 each, else 0.4 first, 0.4 last, 0.2 shared by the middle;
--     time_decay: weight 2^(-age / half-life), age = t - clicked_at, normalised per order.
--   Credits are rounded to 10 decimals and the last referrer (by id) takes the remainder, so every (order, model)
--   sums to exactly 1. Revenue columns are allocated cumulatively in referrer order, so each (order, model)
--   reconciles to the order's rounded amounts. The commission state depends on the run date and is added in the mart.
-- One statement, shaped for speed: the eligible clicks are sorted once (by order and click time); the per-referrer
-- aggregation and the credit rounding of all models read that order (referrers ascending within an order), so no
-- wide row is sorted; only orders split between referrers need rounding at all (a single credited row gets 1).
{%- set models = attribution_models() %}
{%- set split_models = ['linear', 'position_based', 'time_decay'] %}
{%- set half_life_seconds = 7 * 24 * 3600 %}
{%- if var('attribution_model') not in models %}
    {{ exceptions.raise_compiler_error(
        "attribution_model `" ~ var('attribution_model') ~ "` is unknown; use one of " ~ models | join(', ')) }}
{%- endif %}
{{ config(materialized='incremental', incremental_strategy='append', pre_hook="{{ retire_changed_commissions() }}",
          post_hook="{{ analyze_after_full_build() }}",
          indexes=[{'columns': ['partner_id', 'order_id']}]) }}
-- depends_on: {{ ref('int_orders__changed') }}
with orders as (
    select
        o.partner_id, o.order_id, o.order_date, o.lock_date, o.currency, o.fx_rate, o.is_new_customer,
        o.commissionable_amount, o.refunded_amount, o.refunded_before_lock_amount, o.refunded_after_lock_amount,
        a.referrer_partner_id as code_referrer, a.referral_code,
        -- the order's amounts in cents: what a row crediting the whole order carries
        {{ cents('o.commissionable_amount * o.fx_rate') }}                       as revenue_rc,
        {{ cents('(o.commissionable_amount - o.refunded_amount) * o.fx_rate') }} as net_revenue_rc,
        {{ cents('o.refunded_after_lock_amount * o.fx_rate') }}                  as refund_leakage_rc
    from {{ changed_orders_of(ref('int_orders__enriched'), 'o') }}
    left join {{ ref('int_order_code_attribution') }} as a on a.partner_id = o.partner_id and a.order_id = o.order_id
    where o.is_attributable
),

-- eligible clicks of the orders a code does not credit (code beats click), in click order
ranked_clicks as (
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
    from {{ changed_orders_of(ref('int_order_eligible_clicks'), 'c') }}
    where not exists (
        select 1 from {{ ref('int_order_code_attribution') }} as a
        where a.partner_id = c.partner_id and a.order_id = c.order_id
    )
    window w_order as (
        partition by c.partner_id, c.order_id
        order by c.clicked_at, length(c.click_id), c.click_id, c.network_id
    )
),

weighted_clicks as (
    select *, decay_weight / sum(decay_weight) over (partition by partner_id, order_id) as decay_share
    from ranked_clicks
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
    from weighted_clicks
    group by partner_id, order_id, referrer_partner_id
),

-- split credits rounded to 10 decimals, the last referrer (by id) taking the remainder; cum_* is the credit of the
-- referrers up to and including this one, in which money columns are allocated (1 for the last referrer)
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
),

-- one row per credited (order, model, referrer): a constant list of models joined to each referrer row and the
-- model's columns picked by name (a lateral VALUES list would re-initialise its expressions for every row)
click_credits as (
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
        end                                                               as credit,
        case
            when m.attribution_model in ('last_click', 'first_click') or r.referrer_position = r.referrers
                then 1::numeric
            {%- for model in split_models %}
            when m.attribution_model = '{{ model }}' then r.{{ model }}_cum_10
            {%- endfor %}
        end                                                               as cum_credit,
        case when m.attribution_model in ('last_click', 'first_click') then 1::bigint else r.referrer_position end
                                                                          as row_position,
        case m.attribution_model
            when 'last_click' then r.last_network_id
            when 'first_click' then r.first_network_id
            else r.latest_network_id
        end                                                               as network_id,
        case m.attribution_model
            when 'last_click' then r.last_click_id
            when 'first_click' then r.first_click_id
            else r.latest_click_id
        end                                                               as click_id
    from rounded as r
    cross join (values ('{{ models | join("'), ('") }}')) as m (attribution_model)
    where case m.attribution_model
              when 'last_click' then r.has_last_click
              when 'first_click' then r.has_first_click
              else true
          end
),

-- an order with a code gets its code row in every model; without one, its click credit rows or, with no eligible
-- click, an organic row in every model (credit 1)
credits as (
    select
        o.partner_id,
        o.order_id,
        m.attribution_model,
        coalesce(o.code_referrer, c.referrer_partner_id)                  as referrer_partner_id,
        case when o.code_referrer is not null then 'code'
             when c.attribution_model is not null then 'click'
             else 'organic' end                                           as attribution_reason,
        coalesce(c.credit, 1::numeric)                                    as credit,
        coalesce(c.cum_credit, 1::numeric)                                as cum_credit,
        coalesce(c.row_position, 1::bigint)                               as row_position,
        c.network_id,
        c.click_id,
        o.referral_code,
        o.order_date,
        o.lock_date,
        o.currency,
        o.fx_rate,
        o.is_new_customer,
        o.commissionable_amount,
        o.refunded_amount,
        o.refunded_before_lock_amount,
        o.refunded_after_lock_amount,
        o.revenue_rc,
        o.net_revenue_rc,
        o.refund_leakage_rc
    from orders as o
    left join click_credits as c on c.partner_id = o.partner_id and c.order_id = o.order_id
    cross join lateral unnest(case
        when c.attribution_model is null then array['{{ models | join("', '") }}']::text[]
        else array[c.attribution_model]
    end) as m (attribution_model)
),

-- the dated contracts of each (destination, referrer) cut into disjoint date ranges [starts, ends), each with the
-- contract in effect there (the latest effective_from wins, §2); a range no contract covers has no row
contract_bounds as (
    select distinct k.destination_partner_id, k.referrer_partner_id, b.starts
    from {{ ref('stg_cfg__contracts') }} as k
    cross join lateral (values ('-infinity'::date), (k.effective_from), (k.effective_to)) as b (starts)
    where b.starts is not null
),

contract_ranges as (
    select
        b.destination_partner_id,
        b.referrer_partner_id,
        b.starts,
        coalesce(lead(b.starts) over (
            partition by b.destination_partner_id, b.referrer_partner_id order by b.starts
        ), 'infinity'::date) as ends
    from contract_bounds as b
),

contract_periods as (
    select r.destination_partner_id, r.referrer_partner_id, r.starts, r.ends, k.*
    from contract_ranges as r
    cross join lateral (
        select k.contract_type, k.rate, k.new_customer_rate, k.amount, k.effective_from
        from {{ ref('stg_cfg__contracts') }} as k
        where k.destination_partner_id = r.destination_partner_id
          and k.referrer_partner_id = r.referrer_partner_id
          and (k.effective_from is null or k.effective_from <= r.starts)
          and (k.effective_to is null or r.starts < k.effective_to)
        order by k.effective_from desc nulls last
        limit 1
    ) as k
),

terms as (
    select
        c.*,
        c.cum_credit - c.credit as prev_credit,
        greatest(0, c.commissionable_amount - c.refunded_before_lock_amount) as net_commissionable_amount,
        case when k.contract_type is not null then 'contract' else 'default' end as contract_source,
        k.effective_from                                                  as contract_effective_from,
        coalesce(k.contract_type, p.commission_type)                      as contract_type,
        case when k.contract_type is not null then k.rate else p.commission_rate end as base_rate,
        case when k.contract_type is not null then k.new_customer_rate else p.commission_new_customer_rate end
            as new_customer_rate,
        case when k.contract_type is not null then k.amount else p.commission_amount end as flat_amount
    from credits as c
    left join {{ ref('stg_cfg__partners') }} as p on p.partner_id = c.partner_id
    left join contract_periods as k
        on k.destination_partner_id = c.partner_id
       and k.referrer_partner_id = c.referrer_partner_id
       and c.order_date >= k.starts
       and c.order_date < k.ends
),

computed as (
    select
        *,
        case
            when contract_type = 'percent' and is_new_customer and new_customer_rate is not null then new_customer_rate
            when contract_type = 'percent' then base_rate
        end as rate_applied
    from terms
)

select
    partner_id,
    order_id,
    attribution_model,
    referrer_partner_id,
    attribution_reason,
    credit,
    row_position,
    network_id,
    click_id,
    referral_code,
    order_date,
    lock_date,
    currency,
    fx_rate,
    is_new_customer,
    attribution_model = '{{ var("attribution_model") }}'                  as is_commission_model,
    case when referrer_partner_id is not null then contract_source end as contract_source,
    case when referrer_partner_id is not null then contract_type end   as contract_type,
    case when referrer_partner_id is not null then contract_effective_from end as contract_effective_from,
    case when referrer_partner_id is not null then rate_applied end    as rate_applied,
    case when referrer_partner_id is not null and contract_type = 'flat' then flat_amount end as flat_amount,
    case when cum_credit = 1 and prev_credit = 0 then revenue_rc
         else {{ allocated_cents('commissionable_amount * fx_rate') }} end                     as attributed_revenue_rc,
    case when cum_credit = 1 and prev_credit = 0 then net_revenue_rc
         else {{ allocated_cents('(commissionable_amount - refunded_amount) * fx_rate') }} end as net_attributed_revenue_rc,
    case when cum_credit = 1 and prev_credit = 0 then refund_leakage_rc
         else {{ allocated_cents('refunded_after_lock_amount * fx_rate') }} end                as refund_leakage_rc,
    -- §6 KPI money: each (order, referrer) amount rounded to cents once on its own (not allocated), for the
    -- partner totals behind partner_kpis_daily and partner_balances.
    {{ cents('credit * commissionable_amount * fx_rate') }}                       as own_revenue_rc,
    {{ cents('credit * (commissionable_amount - refunded_amount) * fx_rate') }}   as own_net_revenue_rc,
    {{ cents('credit * refunded_after_lock_amount * fx_rate') }}                  as own_refund_leakage_rc,
    case
        when attribution_model <> '{{ var("attribution_model") }}' then null::numeric
        when referrer_partner_id is null then 0::numeric
        when contract_type = 'percent'
            then {{ cents('rate_applied * net_commissionable_amount * fx_rate * credit') }}
        when contract_type = 'flat'
            then case when net_commissionable_amount <= 0 then 0::numeric else {{ cents('flat_amount * credit') }} end
    end                                                                         as commission_rc
from computed
