-- Refunds of every storefront platform in one shape. A view: the incremental int_orders__enriched reads it
-- only for the orders it recomputes.
{{ config(materialized='view') }}
{%- set platform_models = ['stg_shopify__order_refunds', 'stg_woocommerce__order_refunds'] %}

{% for model_name in platform_models %}
select partner_id, order_id, refund_id, refunded_at, refunded_amount, line_item_count from {{ ref(model_name) }}
{% if not loop.last %}union all{% endif %}
{% endfor %}
