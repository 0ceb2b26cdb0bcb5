-- The orders this run (re)computes attribution for. Full build: every order. Incremental run: orders whose raw row
-- changed, plus every order of each (storefront, customer) that had a changed order or a newly landed click: first
-- orders, the credit reset and click eligibility depend on the customer's whole history at that storefront.
{%- if flags.FULL_REFRESH %}
-- --full-refresh rebuilds every incremental model, so every order is (re)computed: no need to look for changes.
select partner_id, order_id from {{ ref('int_orders__unioned') }}
-- depends_on: {{ ref('int_network__clicks') }}
{%- else %}
with orders as (
    select partner_id, order_id, customer_key, _dbt_run_at from {{ ref('int_orders__unioned') }}
),

changed as (
    select partner_id, order_id, customer_key from orders where _dbt_run_at = {{ dbt_run_at() }}
),

customers as (
    select partner_id, customer_key from changed where customer_key is not null
    union
    select destination_partner_id, customer_key
    from {{ ref('int_network__clicks') }}
    where _dbt_run_at = {{ dbt_run_at() }} and customer_key is not null
)

select partner_id, order_id from changed
union
select o.partner_id, o.order_id
from orders as o
inner join customers as c on c.partner_id = o.partner_id and c.customer_key = o.customer_key
{%- endif %}
