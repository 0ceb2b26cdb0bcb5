-- Additive totals per referrer, destination and UTC month of the orders (configured model's credited orders) that
-- partner_balances is computed from. Incremental by difference, like int_partner_daily_totals: a run adds what its
-- recomputed orders contribute now and takes back what they contributed before (int_order_attribution's retired
-- rows); counts and sums of cents, so exactly a full refresh's totals. A month whose count falls to 0 stays, with
-- zeros (the mart skips it).
{{ config(materialized='incremental', unique_key=['referrer_partner_id', 'destination_partner_id', 'month'],
          incremental_strategy='delete+insert') }}
-- depends_on: {{ ref('int_orders__changed') }}
{%- set measures = ['attributed_orders', 'attributed_revenue_rc', 'net_attributed_revenue_rc', 'commission_rc',
                    'refund_leakage_rc', 'commissioned_orders', 'held_orders', 'held_rc'] %}
with contributions as (
{%- if is_incremental() %}
    {{ monthly_order_contributions('(select a.* from ' ~ attribution_recomputed_orders_of(ref('int_order_attribution'), 'a') ~ ') as now_credited', 1) }}
    union all
    {{ monthly_order_contributions(retired_commissions(ref('int_order_attribution')), -1) }}
{%- else %}
    {{ monthly_order_contributions(ref('int_order_attribution'), 1) }}
{%- endif %}
),

{{ totals_with_contributions(['referrer_partner_id', 'destination_partner_id', 'month'], measures) }}
