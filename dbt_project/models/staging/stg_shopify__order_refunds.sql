-- One row per Shopify refund; the refunded amount is the sum of its line items' subtotals.
-- A refund without line items (shipping, fees) has refunded_amount 0: it reduces nothing.
with refunds as (
    select
        o.partner_id,
        o.order_id,
        r.refund,
        r.ord
    from {{ source('raw', 'orders') }} as o
    cross join lateral jsonb_array_elements(
        case when jsonb_typeof(o.payload -> 'refunds') = 'array' then o.payload -> 'refunds' else '[]'::jsonb end
    ) with ordinality as r(refund, ord)
    where o.platform in ('shopify', 'shopify_graphql')
)

select
    partner_id,
    order_id,
    coalesce(refund ->> 'id', 'position-' || ord::text)         as refund_id,
    (refund ->> 'created_at')::timestamptz                      as refunded_at,
    coalesce((
        -- older API versions have no subtotal: the refunded quantity at the line item's price, less its discount
        select sum(coalesce(
            coalesce(li ->> 'subtotal', li -> 'subtotal_set' -> 'shop_money' ->> 'amount')::numeric,
            (li ->> 'quantity')::numeric * ((li -> 'line_item' ->> 'price')::numeric
                - coalesce((li -> 'line_item' ->> 'total_discount')::numeric, 0)
                  / nullif((li -> 'line_item' ->> 'quantity')::numeric, 0))
        ))
        from jsonb_array_elements(
            case when jsonb_typeof(refund -> 'refund_line_items') = 'array'
                 then refund -> 'refund_line_items' else '[]'::jsonb end
        ) as li
    ), 0)                                                       as refunded_amount,
    coalesce(jsonb_array_length(
        case when jsonb_typeof(refund -> 'refund_line_items') = 'array'
             then refund -> 'refund_line_items' else '[]'::jsonb end
    ), 0)                                                       as line_item_count
from refunds
