-- One row per WooCommerce order (latest version), in the same shape as stg_shopify__orders.
-- Cancellation (PRODUCT.md §3): WooCommerce records no cancellation time, so it is the date_modified_gmt of the first
-- landed version with status cancelled, failed or trash (raw.orders.cancelled_seen_at, set by landing; a later edit
-- does not move it), else the deletion time of an `order.deleted` webhook. A version modified after that deletion
-- (an order restored from the trash) undoes it.
with source as (
    select * from {{ source('raw', 'orders') }}
    where platform = 'woocommerce'
),

deletions as (
    select partner_id, order_id, deleted_at from {{ source('raw', 'order_deletions') }}
),

versions as (
    select
        source.*,
        payload ->> 'status' in ('cancelled', 'failed', 'trash') as has_cancelled_status,
        case when d.deleted_at >= source.updated_at then d.deleted_at end as deleted_at
    from source
    left join deletions as d on d.partner_id = source.partner_id and d.order_id = source.order_id
)

select
    partner_id,
    order_id,
    'woocommerce'::text                                                          as platform,
    {{ woocommerce_gmt("payload ->> 'date_created_gmt'") }}                      as ordered_at,
    coalesce({{ woocommerce_gmt("payload ->> 'date_modified_gmt'") }}, updated_at) as updated_at,
    customer_key,
    nullif(nullif(payload ->> 'customer_id', ''), '0')                           as platform_customer_id,
    upper(payload ->> 'currency')                                                as currency,
    coalesce((
        select sum((li ->> 'total')::numeric)
        from jsonb_array_elements(
            case when jsonb_typeof(payload -> 'line_items') = 'array' then payload -> 'line_items' else '[]'::jsonb end
        ) as li
    ), 0)                                                                        as commissionable_amount,
    coalesce(
        case when has_cancelled_status then coalesce(cancelled_seen_at, updated_at) end,
        deleted_at
    )                                                                            as cancelled_at,
    deleted_at,
    payload ->> 'status'                                                         as order_status,
    (coalesce(has_cancelled_status, false) or deleted_at is not null)            as is_cancelled,
    coalesce(payload ->> 'status' = 'checkout-draft', false)                     as is_test,
    nullif(trim((
        select m ->> 'value'
        from jsonb_array_elements(
            case when jsonb_typeof(payload -> 'meta_data') = 'array' then payload -> 'meta_data' else '[]'::jsonb end
        ) with ordinality as md(m, ord)
        where m ->> 'key' = '_alliance_ref'
        order by ord desc
        limit 1
    )), '')                                                                      as landing_ref,
    loaded_at                                                                    as _loaded_at
from versions
