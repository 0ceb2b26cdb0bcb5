-- §6 Currency: an order with no FX rate on or before its UTC date fails the quality gate (never treated as 0).
-- The failing rows name the currency and date. An incremental run checks the orders it recomputed.
select currency, order_date, partner_id, order_id
from {{ ref('int_orders__enriched') }}
where fx_rate is null {{ and_in_test_scope('changed_orders') }}
