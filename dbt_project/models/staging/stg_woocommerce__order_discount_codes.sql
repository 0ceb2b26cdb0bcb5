-- One row per coupon code on a WooCommerce order (`coupon_lines[].code`), with its 1-based position.
select
    o.partner_id,
    o.order_id,
    c.ord::integer                        as code_position,
    c.coupon ->> 'code'                   as discount_code,
    upper(trim(c.coupon ->> 'code'))      as code_normalized
from {{ source('raw', 'orders') }} as o
cross join lateral jsonb_array_elements(
    case when jsonb_typeof(o.payload -> 'coupon_lines') = 'array' then o.payload -> 'coupon_lines' else '[]'::jsonb end
) with ordinality as c(coupon, ord)
where o.platform = 'woocommerce'
  and nullif(trim(c.coupon ->> 'code'), '') is not null
