-- §6.3 eligible clicks per attributable order: same destination, same non-null customer_key, referrer is a
-- known partner other than the destination, t - lookback_days*24h <= clicked_at <= t, and clicked_at later
-- than the customer's previous (non-cancelled, non-test) order at the destination. Shared by all models.
-- A view: int_order_attribution reads it for the orders a run recomputes, and PostgreSQL folds it into that query
-- (no copy of millions of eligible clicks is written and indexed).
{{ config(materialized='view') }}
select
    o.partner_id,
    o.order_id,
    o.ordered_at,
    k.network_id,
    k.click_id,
    k.referrer_partner_id,
    k.clicked_at,
    k.referral_code
from {{ ref('int_orders__enriched') }} as o
inner join {{ ref('int_network__clicks') }} as k
    on k.destination_partner_id = o.partner_id
   and k.customer_key = o.customer_key
inner join {{ ref('stg_cfg__partners') }} as p
    on p.partner_id = k.referrer_partner_id
where o.is_attributable
  and o.customer_key is not null
  and k.referrer_partner_id <> o.partner_id
  and k.clicked_at >= o.ordered_at - {{ lookback_interval() }}
  and k.clicked_at <= o.ordered_at
  and (o.previous_order_at is null or k.clicked_at > o.previous_order_at)
