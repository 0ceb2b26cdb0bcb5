-- One row per WooCommerce order (latest version), in the same shape as stg_shopify__orders.
with source as (
    select * from {{ source('raw', 'orders') }}
    where platform = 'woocommerce'
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
    case when payload ->> 'status' in ('cancelled', 'failed', 'trash')
         then {{ woocommerce_gmt("payload ->> 'date_modified_gmt'") }} end       as cancelled_at,
    payload ->> 'status'                                                         as order_status,
    coalesce(payload ->> 'status' in ('cancelled', 'failed', 'trash'), false)    as is_cancelled,
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
from source
