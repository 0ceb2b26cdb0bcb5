-- One row per Shopify order (latest version), typed from the API payload.
with source as (
    select * from {{ source('raw', 'orders') }}
    where platform = 'shopify'
)

select
    partner_id,
    order_id,
    'shopify'::text                                              as platform,
    (payload ->> 'created_at')::timestamptz                      as ordered_at,
    coalesce((payload ->> 'updated_at')::timestamptz, updated_at) as updated_at,
    customer_key,
    payload -> 'customer' ->> 'id'                               as platform_customer_id,
    upper(payload ->> 'currency')                                as currency,
    (payload ->> 'subtotal_price')::numeric                      as commissionable_amount,
    -- §3: cancelled_at where Shopify gives it, else the updated_at of the (stored) version carrying `voided`
    coalesce((payload ->> 'cancelled_at')::timestamptz,
             case when payload ->> 'financial_status' = 'voided'
                  then coalesce((payload ->> 'updated_at')::timestamptz, updated_at) end) as cancelled_at,
    payload ->> 'financial_status'                               as financial_status,
    ((payload ->> 'cancelled_at') is not null
        or coalesce(payload ->> 'financial_status', '') = 'voided') as is_cancelled,
    coalesce((payload ->> 'test')::boolean, false)               as is_test,
    payload ->> 'landing_site'                                   as landing_site,
    nullif(trim({{ url_query_param("(payload ->> 'landing_site')", 'ref') }}), '') as landing_ref,
    loaded_at                                                    as _loaded_at
from source
