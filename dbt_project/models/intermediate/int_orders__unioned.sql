-- Orders of every storefront platform in one shape. Add `union all select ... from stg_woocommerce__orders`
-- here (same columns, same order) when the WooCommerce staging model exists.
{%- set order_columns = [
    'partner_id', 'order_id', 'platform', 'ordered_at', 'updated_at', 'customer_key', 'platform_customer_id',
    'currency', 'commissionable_amount', 'cancelled_at', 'is_cancelled', 'is_test', 'landing_ref'
] %}
{%- set platform_models = ['stg_shopify__orders', 'stg_woocommerce__orders'] %}

{% for model_name in platform_models %}
select {{ order_columns | join(', ') }} from {{ ref(model_name) }}
{% if not loop.last %}union all{% endif %}
{% endfor %}
