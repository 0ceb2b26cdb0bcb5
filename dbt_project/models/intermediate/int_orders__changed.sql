-- The orders this run (re)computes attribution for. Full build: every order. Incremental run: orders whose raw row
-- changed, plus the later orders of each (storefront, customer) that had a changed order or a newly landed click:
-- first orders, the credit reset and click eligibility depend on the customer's earlier history at that storefront
-- (int_orders__enriched reads the rest of that history as stored).
-- Analysed once built: every incremental model deletes and reads by this set, and without statistics the planner
-- hashes the whole large table instead of looking the few changed orders up in its index.
{{ config(post_hook="analyze {{ this }}") }}
{%- if flags.FULL_REFRESH %}
-- --full-refresh rebuilds every incremental model, so every order is (re)computed: no need to look for changes.
select partner_id, order_id from {{ ref('int_orders__unioned') }}
-- depends_on: {{ ref('int_network__clicks') }}
{%- else %}
with orders as (
    select partner_id, order_id, customer_key, ordered_at from {{ ref('int_orders__unioned') }}
),

changed as (
    select partner_id, order_id, customer_key, ordered_at, _previous_customer_key, _previous_ordered_at
    from {{ ref('int_orders__unioned') }}
    where _dbt_run_at = {{ dbt_run_at() }}
),

-- Where a (storefront, customer) history changed, and from when: a changed order (at the earlier of its old and
-- new time; under its old customer too when the customer changed) or a new click. Orders at or after that time
-- can get another previous order, first-order flag, credit reset or eligible clicks; earlier ones cannot.
history_changes as (
    select partner_id, customer_key, least(ordered_at, _previous_ordered_at) as since
    from changed where customer_key is not null
    union all
    select partner_id, _previous_customer_key, _previous_ordered_at
    from changed where _previous_customer_key is not null and _previous_customer_key <> coalesce(customer_key, '')
    union all
    select destination_partner_id, customer_key, clicked_at
    from {{ ref('int_network__clicks') }}
    where _dbt_run_at = {{ dbt_run_at() }} and customer_key is not null
),

customers as (
    select partner_id, customer_key, min(since) as since from history_changes group by partner_id, customer_key
)

select partner_id, order_id from changed
union
select o.partner_id, o.order_id
from orders as o
inner join customers as c on c.partner_id = o.partner_id and c.customer_key = o.customer_key
where o.ordered_at >= c.since
{%- endif %}
