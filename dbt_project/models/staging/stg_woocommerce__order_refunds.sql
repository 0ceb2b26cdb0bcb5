-- One row per WooCommerce refund (fetched from /orders/{id}/refunds into payload.alliance_refunds).
-- The refunded amount is minus the sum of its line items' totals (WooCommerce stores them negative);
-- a refund without line items (shipping or a fee only) has refunded_amount 0: it reduces nothing.
with refunds as (
    select
        o.partner_id,
        o.order_id,
        r.refund,
        r.ord
    from {{ source('raw', 'orders') }} as o
    cross join lateral jsonb_array_elements(
        case when jsonb_typeof(o.payload -> 'alliance_refunds') = 'array'
             then o.payload -> 'alliance_refunds' else '[]'::jsonb end
    ) with ordinality as r(refund, ord)
    where o.platform = 'woocommerce'
)

select
    partner_id,
    order_id,
    coalesce(refund ->> 'id', 'position-' || ord::text)         as refund_id,
    {{ woocommerce_gmt("refund ->> 'date_created_gmt'") }}      as refunded_at,
    coalesce(-(
        select sum((li ->> 'total')::numeric)
        from jsonb_array_elements(
            case when jsonb_typeof(refund -> 'line_items') = 'array' then refund -> 'line_items' else '[]'::jsonb end
        ) as li
    ), 0)                                                       as refunded_amount,
    coalesce(jsonb_array_length(
        case when jsonb_typeof(refund -> 'line_items') = 'array' then refund -> 'line_items' else '[]'::jsonb end
    ), 0)                                                       as line_item_count
from refunds
