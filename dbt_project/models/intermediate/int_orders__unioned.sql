-- Orders of every storefront platform in one shape. Add `union all select ... from stg_woocommerce__orders`
-- here (same columns, same order, including `_loaded_at` = raw.orders.loaded_at) when the WooCommerce staging
-- model exists. Incremental: only raw rows loaded since the last run (minus an overlap) are re-read, and only new
-- or different ones are (re)written; they carry `_dbt_run_at` = this run, which is how int_orders__changed finds them, and the
-- time and customer of the version they replace.
{{ config(materialized='incremental', unique_key=['partner_id', 'order_id'], incremental_strategy='delete+insert',
          post_hook="{{ analyze_after_full_build() }}",
          indexes=[{'columns': ['partner_id', 'order_id'], 'unique': true}, {'columns': ['partner_id', 'customer_key']},
                   {'columns': ['_dbt_run_at']}, {'columns': ['_loaded_at']}]) }}
{%- set order_columns = [
    'partner_id', 'order_id', 'platform', 'ordered_at', 'updated_at', 'customer_key', 'platform_customer_id',
    'currency', 'commissionable_amount', 'cancelled_at', 'is_cancelled', 'is_test', 'landing_ref',
    '_loaded_at'
] %}
{%- set platform_models = ['stg_shopify__orders', 'stg_woocommerce__orders'] %}

with landed as (
    select * from (
        {% for model_name in platform_models %}
        select {{ order_columns | join(', ') }} from {{ ref(model_name) }}
        {% if not loop.last %}union all{% endif %}
        {% endfor %}
    ) as orders
    {{ loaded_since_last_run() }}
)

-- _previous_*: the version this run replaces (null for a new order): int_orders__changed recomputes the history of
-- the customer the order belonged to, from the earlier of its two times
select
    l.*,
    {{ dbt_run_at() }} as _dbt_run_at,
    {%- if is_incremental() %}
    p.ordered_at       as _previous_ordered_at,
    p.customer_key     as _previous_customer_key
from landed as l
-- (looked up order by order on the unique index: a run reads a few thousand orders, the table holds millions)
left join lateral (
    select * from {{ this }} as t where t.partner_id = l.partner_id and t.order_id = l.order_id offset 0
) as p on true
-- a row re-read by the overlap as it was processed before is left alone: the last (successful) run handled it.
-- Every landing of a raw row sets loaded_at (connectors/landing.py), so an equal _loaded_at also means equal
-- discount codes and refunds, which are read from the same payload.
where p.order_id is null
   or (l._loaded_at is distinct from p._loaded_at
       and (l.{{ order_columns | join(', l.') }}) is distinct from (p.{{ order_columns | join(', p.') }}))
    {%- else %}
    null::timestamptz  as _previous_ordered_at,
    null::text         as _previous_customer_key
from landed as l
    {%- endif %}
