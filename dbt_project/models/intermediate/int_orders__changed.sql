-- The orders this run (re)computes attribution for. Full build: every order. Incremental run: orders whose raw row
-- changed, plus the orders of the same (storefront, customer) that a changed order or a newly landed click can
-- reach: first orders, the credit reset and click eligibility depend on the customer's earlier history at that
-- storefront (int_orders__enriched reads the rest of that history as stored). §8 tiers and monthly caps reach
-- further, across a programme month: int_order_attribution re-rates the other orders of the months these touch
-- (rerate_programme_months), without recomputing their attribution.
-- Analysed once built: every incremental model deletes and reads by this set, and without statistics the planner
-- hashes the whole large table instead of looking the few changed orders up in its index.
{{ config(post_hook="analyze {{ this }}") }}
{%- if flags.FULL_REFRESH %}
-- --full-refresh rebuilds every incremental model, so every order is (re)computed: no need to look for changes.
select partner_id, order_id from {{ ref('int_orders__unioned') }}
-- depends_on: {{ ref('int_network__clicks') }}
{%- else %}
with changed as (
    select partner_id, order_id, customer_key, ordered_at, _previous_customer_key, _previous_ordered_at
    from {{ ref('int_orders__unioned') }}
    where _dbt_run_at = {{ dbt_run_at() }}
),

-- Where a (storefront, customer) history changed: a changed order at its new place and at its old one (old customer,
-- old time), and a new click at its time, which can only reach orders within the lookback after it.
change_points as (
    select partner_id, customer_key, ordered_at as since, null::timestamptz as horizon
    from changed where customer_key is not null
    union
    select partner_id, _previous_customer_key, _previous_ordered_at, null
    from changed where _previous_customer_key is not null
    union
    select destination_partner_id, customer_key, clicked_at, clicked_at + {{ lookback_interval() }}
    from {{ ref('int_network__clicks') }}
    where _dbt_run_at = {{ dbt_run_at() }} and customer_key is not null
),

-- A change at `since` reaches the customer's orders from `since` up to and including the first order after it that
-- is attributable now (its previous order, first-order flag and eligible clicks may change); every later order
-- keeps the same previous order, so nothing it depends on changed. Attributable "now" is this run's state of every
-- order, changed ones included: if such an order was not attributable before, its own change point covers what
-- follows it.
reach as (
    select
        c.partner_id,
        c.customer_key,
        c.since,
        least(c.horizon, (
            select min(o.ordered_at)
            from {{ ref('int_orders__unioned') }} as o
            where o.partner_id = c.partner_id and o.customer_key = c.customer_key and o.ordered_at > c.since
              and not o.is_test and not {{ is_cancelled_effective('o.') }}
        )) as through
    from change_points as c
),

reached as (
    select partner_id, order_id from changed
    union
    select o.partner_id, o.order_id
    from {{ ref('int_orders__unioned') }} as o
    inner join reach as r on r.partner_id = o.partner_id and r.customer_key = o.customer_key
    where o.ordered_at >= r.since and (r.through is null or o.ordered_at <= r.through)
    {%- if var('holds_max_clicks_per_hour', none) is not none %}
    -- §8.5: a new click counts toward the click burst of every later click within the hour, so it reaches the
    -- customer's orders up to an hour past its lookback, past later purchases too
    union
    select o.partner_id, o.order_id
    from {{ ref('int_network__clicks') }} as k
    inner join {{ ref('int_orders__unioned') }} as o
        on o.partner_id = k.destination_partner_id and o.customer_key = k.customer_key
    where k._dbt_run_at = {{ dbt_run_at() }}
      and o.ordered_at >= k.clicked_at
      and o.ordered_at <= k.clicked_at + {{ lookback_interval() }} + interval '3600 seconds'
    {%- endif %}
)

select partner_id, order_id from reached
{%- endif %}
