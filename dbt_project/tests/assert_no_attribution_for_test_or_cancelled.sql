-- §6.1: test orders and orders cancelled on or before their lock date get no attribution rows.
select a.partner_id, a.order_id
from {{ ref('fct_order_attribution') }} as a
inner join {{ ref('fct_orders') }} as o on o.partner_id = a.partner_id and o.order_id = a.order_id
where o.is_test or (o.is_cancelled and not o.is_cancelled_after_lock)
