-- Every attribution row refers to an order in fct_orders (composite relationship on partner_id, order_id) and, when
-- credited, to a known partner; §6.1: test orders and orders cancelled on or before their lock date get no
-- attribution rows. One pass for the three. An incremental run checks the orders it recomputed
-- (macros/test_scoping.sql), selected before the joins.
with attribution as (
    select partner_id, order_id, attribution_model, referrer_partner_id
    from {{ ref('fct_order_attribution') }} as a
    where true {{ and_in_test_scope('changed_orders', 'a.') }}
)

select
    a.partner_id,
    a.order_id,
    a.attribution_model,
    a.referrer_partner_id,
    case
        when o.order_id is null then 'order missing from fct_orders'
        when o.is_test or (o.is_cancelled and not o.is_cancelled_after_lock) then 'test or cancelled order attributed'
        else 'referrer is not a known partner'
    end as problem
from attribution as a
left join {{ ref('fct_orders') }} as o on o.partner_id = a.partner_id and o.order_id = a.order_id
left join {{ ref('stg_cfg__partners') }} as p on p.partner_id = a.referrer_partner_id
where o.order_id is null
   or o.is_test or (o.is_cancelled and not o.is_cancelled_after_lock)
   or (a.referrer_partner_id is not null and p.partner_id is null)
