-- One row per Shopify order (latest version), typed from the API payload. Orders pulled through the GraphQL Admin API
-- (platform shopify_graphql) land in the same REST-shaped record (connectors/shopify_graphql.py), so one model reads both.
-- Cancellation (PRODUCT.md §3): `cancelled_at` where Shopify gives it, else the updated_at of the first landed version
-- that was voided (raw.orders.cancelled_seen_at, set by landing), else the deletion time of an `orders/delete`
-- webhook. A Shopify deletion is final: no later version can undo it.
with source as (
    select * from {{ source('raw', 'orders') }}
    where platform in ('shopify', 'shopify_graphql')
),

deletions as (
    select partner_id, order_id, deleted_at from {{ source('raw', 'order_deletions') }}
)

select
    source.partner_id,
    source.order_id,
    'shopify'::text                                              as platform,
    (payload ->> 'created_at')::timestamptz                      as ordered_at,
    coalesce((payload ->> 'updated_at')::timestamptz, source.updated_at) as updated_at,
    customer_key,
    payload -> 'customer' ->> 'id'                               as platform_customer_id,
    upper(payload ->> 'currency')                                as currency,
    (payload ->> 'subtotal_price')::numeric                      as commissionable_amount,
    coalesce(
        (payload ->> 'cancelled_at')::timestamptz,
        case when payload ->> 'financial_status' = 'voided' then coalesce(cancelled_seen_at, source.updated_at) end,
        d.deleted_at
    )                                                            as cancelled_at,
    d.deleted_at                                                 as deleted_at,
    payload ->> 'financial_status'                               as financial_status,
    ((payload ->> 'cancelled_at') is not null
        or coalesce(payload ->> 'financial_status', '') = 'voided'
        or d.deleted_at is not null)                             as is_cancelled,
    coalesce((payload ->> 'test')::boolean, false)               as is_test,
    payload ->> 'landing_site'                                   as landing_site,
    nullif(trim({{ url_query_param("(payload ->> 'landing_site')", 'ref') }}), '') as landing_ref,
    loaded_at                                                    as _loaded_at
from source
left join deletions as d on d.partner_id = source.partner_id and d.order_id = source.order_id
