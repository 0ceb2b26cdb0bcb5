-- Additive daily totals per partner that partner_kpis_daily is computed from: clicks sent, and the configured
-- model's credited orders as referrer (earned) and as destination (owed), each on its UTC date.
-- Incremental by difference: a run adds what its recomputed orders and new clicks contribute now and takes back
-- what they contributed before (the retired rows int_order_attribution kept, the previous versions of re-landed
-- clicks), so it touches only the days they fall on. Every column is a count or a sum of cents (numeric), so the
-- totals are exactly those of a full refresh; a day whose counts fall to 0 stays, with zeros (the mart skips it).
{{ config(materialized='incremental', unique_key=['partner_id', 'kpi_date'], incremental_strategy='delete+insert') }}
-- depends_on: {{ ref('int_orders__changed') }}
{%- set measures = ['clicks_sent', 'referred_orders', 'referred_new_customer_orders', 'attributed_revenue_rc',
                    'net_attributed_revenue_rc', 'commission_earned_rc', 'refund_leakage_rc', 'owed_orders',
                    'commission_owed_rc'] %}
with contributions as (
{%- if is_incremental() %}
    {{ daily_order_contributions('(select a.* from ' ~ attribution_recomputed_orders_of(ref('int_order_attribution'), 'a') ~ ') as now_credited', 1) }}
    union all
    {{ daily_order_contributions(retired_commissions(ref('int_order_attribution')), -1) }}
    union all
    {{ daily_click_contributions('referrer_partner_id', 'clicked_at', 1) }}
    from {{ ref('int_network__clicks') }}
    where _dbt_run_at = {{ dbt_run_at() }} and referrer_partner_id <> destination_partner_id
    union all
    {{ daily_click_contributions('_previous_referrer_partner_id', '_previous_clicked_at', -1) }}
    from {{ ref('int_network__clicks') }}
    where _dbt_run_at = {{ dbt_run_at() }} and _previous_clicked_at is not null
      and _previous_referrer_partner_id <> _previous_destination_partner_id
{%- else %}
    {{ daily_order_contributions(ref('int_order_attribution'), 1) }}
    union all
    {{ daily_click_contributions('referrer_partner_id', 'clicked_at', 1) }}
    from {{ ref('int_network__clicks') }}
    where referrer_partner_id <> destination_partner_id
{%- endif %}
),

{{ totals_with_contributions(['partner_id', 'kpi_date'], measures) }}
