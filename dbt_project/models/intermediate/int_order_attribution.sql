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
-- One statement: the click ranking and the credit rounding are one sort each, and nothing in between is written.
{%- set models = attribution_models() %}
{%- set half_life_seconds = 7 * 24 * 3600 %}
{%- if var('attribution_model') not in models %}
    {{ exceptions.raise_compiler_error(
        "attribution_model `" ~ var('attribution_model') ~ "` is unknown; use one of " ~ models | join(', ')) }}
{%- endif %}
{{ config(materialized='incremental', incremental_strategy='append', pre_hook="{{ delete_changed_orders() }}",
          indexes=[{'columns': ['partner_id', 'order_id']}]) }}
-- depends_on: {{ ref('int_orders__changed') }}
with orders as (
    select
        o.partner_id, o.order_id, o.order_date, o.lock_date, o.currency, o.fx_rate, o.is_new_customer,
        o.commissionable_amount, o.refunded_amount, o.refunded_before_lock_amount, o.refunded_after_lock_amount,
        a.referrer_partner_id as code_referrer, a.referral_code, a.code_source
    from {{ ref('int_orders__enriched') }} as o
    left join {{ ref('int_order_code_attribution') }} as a on a.partner_id = o.partner_id and a.order_id = o.order_id
    where o.is_attributable {{ only_changed_orders('o.') }}
),

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
    from {{ ref('int_order_eligible_clicks') }} as c
    where true {{ only_changed_orders('c.') }}
    window w_order as (
        partition by c.partner_id, c.order_id
        order by c.clicked_at, length(c.click_id), c.click_id, c.network_id
    )
),

weighted_clicks as (
    select *, decay_weight / sum(decay_weight) over (partition by partner_id, order_id) as decay_share
    from ranked_clicks
),

-- every model's credit of each click, summed per (order, referrer) in one aggregation; the five models are then
-- unpivoted. In linear, position_based and time_decay every click has credit > 0, so a referrer's latest credited
-- click is its latest click; in last_click / first_click it is the order's last / first click.
referrer_clicks as (
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
    from weighted_clicks
    group by partner_id, order_id, referrer_partner_id
),

click_credits as (
    select r.partner_id, r.order_id, m.attribution_model, r.referrer_partner_id, m.credit, m.network_id, m.click_id
    from referrer_clicks as r
    cross join lateral (
        values
            ('last_click'::text, r.last_click, r.last_network_id, r.last_click_id),
            ('first_click', r.first_click, r.first_network_id, r.first_click_id),
            ('linear', r.linear, r.latest_network_id, r.latest_click_id),
            ('position_based', r.position_based, r.latest_network_id, r.latest_click_id),
            ('time_decay', r.time_decay, r.latest_network_id, r.latest_click_id)
    ) as m (attribution_model, credit, network_id, click_id)
    where m.credit > 0
),

-- an order with a code gets its code row in every model; without one, its click credit rows or, with no eligible
-- click, an organic row in every model
candidates as (
    select
        o.partner_id,
        o.order_id,
        m.attribution_model,
        coalesce(o.code_referrer, c.referrer_partner_id)                  as referrer_partner_id,
        case when o.code_referrer is not null then 'code'
             when c.attribution_model is not null then 'click'
             else 'organic' end                                           as attribution_reason,
        coalesce(c.credit, 1::numeric)                                    as credit,
        c.network_id,
        c.click_id,
        o.referral_code
    from orders as o
    left join click_credits as c
        on c.partner_id = o.partner_id and c.order_id = o.order_id and o.code_referrer is null
    cross join lateral unnest(case
        when c.attribution_model is null then array['{{ models | join("', '") }}']::text[]
        else array[c.attribution_model]
    end) as m (attribution_model)
),

-- credits rounded to 10 decimals, the last referrer taking the remainder; cum_credit is the credit of the rows up to
-- and including this one in (referrer nulls last) order, in which money columns are allocated
rounded as (
    select
        *,
        row_number() over w_from_last                                              as rank_from_last,
        count(*) over w_order_model                                                as n_rows,
        sum(round(credit, 10)) over w_order_model                                  as sum_credit_10,
        sum(round(credit, 10)) over (w_from_last rows between current row and unbounded following)
                                                                                   as cum_credit_10
    from candidates
    window
        w_order_model as (partition by partner_id, order_id, attribution_model),
        -- referrers are distinct within an (order, model), so this order read backwards is `referrer nulls last`
        w_from_last as (w_order_model order by referrer_partner_id desc nulls first)
),

credits as (
    select
        partner_id,
        order_id,
        attribution_model,
        referrer_partner_id,
        attribution_reason,
        trim_scale(case
            when rank_from_last = 1 then 1 - (sum_credit_10 - round(credit, 10))
            else round(credit, 10)
        end)                                          as credit,
        case when rank_from_last = 1 then 1::numeric else cum_credit_10 end as cum_credit,
        n_rows - rank_from_last + 1                   as row_position,
        network_id,
        click_id,
        referral_code
    from rounded
),

contracted as (
    select
        c.*,
        c.cum_credit - c.credit as prev_credit,
        o.order_date,
        o.lock_date,
        o.currency,
        o.fx_rate,
        o.is_new_customer,
        o.commissionable_amount,
        o.refunded_amount,
        o.refunded_before_lock_amount,
        o.refunded_after_lock_amount,
        greatest(0, o.commissionable_amount - o.refunded_before_lock_amount) as net_commissionable_amount,
        dated.contract_type    as dated_contract_type,
        dated.rate             as dated_rate,
        dated.new_customer_rate as dated_new_customer_rate,
        dated.amount           as dated_amount,
        dated.effective_from   as contract_effective_from,
        p.commission_type              as default_type,
        p.commission_rate              as default_rate,
        p.commission_new_customer_rate as default_new_customer_rate,
        p.commission_amount            as default_amount
    from credits as c
    inner join orders as o on o.partner_id = c.partner_id and o.order_id = c.order_id
    left join {{ ref('stg_cfg__partners') }} as p on p.partner_id = c.partner_id
    left join lateral (
        select k.*
        from {{ ref('stg_cfg__contracts') }} as k
        where k.destination_partner_id = c.partner_id
          and k.referrer_partner_id = c.referrer_partner_id
          and (k.effective_from is null or k.effective_from <= o.order_date)
          and (k.effective_to is null or o.order_date < k.effective_to)
        order by k.effective_from desc nulls last
        limit 1
    ) as dated on true
),

terms as (
    select
        *,
        case when dated_contract_type is not null then 'contract' else 'default' end as contract_source,
        coalesce(dated_contract_type, default_type) as contract_type,
        case when dated_contract_type is not null then dated_rate else default_rate end as base_rate,
        case when dated_contract_type is not null then dated_new_customer_rate else default_new_customer_rate end
            as new_customer_rate,
        case when dated_contract_type is not null then dated_amount else default_amount end as flat_amount
    from contracted
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
    {{ allocated_cents('commissionable_amount * fx_rate') }}                      as attributed_revenue_rc,
    {{ allocated_cents('(commissionable_amount - refunded_amount) * fx_rate') }}  as net_attributed_revenue_rc,
    {{ allocated_cents('refunded_amount * fx_rate') }}                            as attributed_refunded_rc,
    {{ allocated_cents('refunded_after_lock_amount * fx_rate') }}                 as refund_leakage_rc,
    case
        when attribution_model <> '{{ var("attribution_model") }}' then null::numeric
        when referrer_partner_id is null then 0::numeric
        when contract_type = 'percent'
            then {{ cents('rate_applied * net_commissionable_amount * fx_rate * credit') }}
        when contract_type = 'flat'
            then case when net_commissionable_amount <= 0 then 0::numeric else {{ cents('flat_amount * credit') }} end
    end                                                                         as commission_rc
from computed
