-- One row per discount code on a Shopify order, with its position in the listed order (1-based).
select
    o.partner_id,
    o.order_id,
    d.ord::integer                        as code_position,
    d.discount ->> 'code'                 as discount_code,
    upper(trim(d.discount ->> 'code'))    as code_normalized
from {{ source('raw', 'orders') }} as o
cross join lateral jsonb_array_elements(
    case when jsonb_typeof(o.payload -> 'discount_codes') = 'array' then o.payload -> 'discount_codes' else '[]'::jsonb end
) with ordinality as d(discount, ord)
where o.platform in ('shopify', 'shopify_graphql')
  and nullif(trim(d.discount ->> 'code'), '') is not null
