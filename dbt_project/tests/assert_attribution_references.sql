-- Every attribution row refers to an order in fct_orders (composite relationship on partner_id, order_id).
select a.partner_id, a.order_id
from {{ ref('fct_order_attribution') }} as a
left join {{ ref('fct_orders') }} as o on o.partner_id = a.partner_id and o.order_id = a.order_id
where o.order_id is null
