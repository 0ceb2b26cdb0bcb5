-- §6 Currency: an order with no FX rate on or before its UTC date fails the quality gate (never treated as 0).
-- The failing rows name the currency and date. An incremental run checks the orders it recomputed.
select currency, order_date, partner_id, order_id
from {{ scoped(ref("int_orders__enriched"), "changed_orders") }}
where fx_rate is null
