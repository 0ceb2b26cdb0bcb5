-- §6 credit of every attributable order in every model, one row per (order, model, credited referrer), with the
-- order's amounts: a code gives its partner credit 1 in every model (§6.2 code beats click); otherwise the click
-- credits of int_attribution__click_credits; otherwise organic (referrer null, credit 1). Test and cancelled orders
-- get no rows (§6.1). revenue_rc, net_revenue_rc and refund_leakage_rc are the whole order's amounts in cents.
-- Ephemeral: compiled into int_order_attribution's statement, scoped to the orders its run recomputes.
{{ config(materialized='ephemeral') }}
-- depends_on: {{ ref('int_orders__changed') }}
with orders as (
    select
        o.partner_id, o.order_id, o.ordered_at, o.customer_key, o.order_date, o.lock_date, o.currency, o.fx_rate,
        o.is_new_customer,
        o.commissionable_amount, o.refunded_amount, o.refunded_before_lock_amount, o.refunded_after_lock_amount,
        a.referrer_partner_id as code_referrer, a.referral_code,
        {{ cents('o.commissionable_amount * o.fx_rate') }}                       as revenue_rc,
        {{ cents('(o.commissionable_amount - o.refunded_amount) * o.fx_rate') }} as net_revenue_rc,
        {{ cents('o.refunded_after_lock_amount * o.fx_rate') }}                  as refund_leakage_rc
    from {{ changed_orders_of(ref('int_orders__enriched'), 'o', is_incremental_for('int_order_attribution')) }}
    left join {{ ref('int_order_code_attribution') }} as a on a.partner_id = o.partner_id and a.order_id = o.order_id
    where o.is_attributable
)

-- an order with a code gets its code row in every model; without one, its click credit rows or, with no eligible
-- click, an organic row in every model
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
    o.ordered_at,
    o.customer_key,
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
left join {{ ref('int_attribution__click_credits') }} as c on c.partner_id = o.partner_id and c.order_id = o.order_id
cross join lateral unnest(case
    when c.attribution_model is null then array['{{ attribution_models() | join("', '") }}']::text[]
    else array[c.attribution_model]
end) as m (attribution_model)
