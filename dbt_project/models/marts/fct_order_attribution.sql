-- One row per (order, attribution model, credited referrer), all five models side by side; organic orders have one
-- row per model with a null referrer. Only the configured model carries commission_rc / commission_state (§8: held,
-- rejected and approved rows keep that state whatever the date).
-- Incremental: the orders recomputed since this schema's snapshot are replaced, and commission_state, which moves
-- with the run date, is brought up to date on the other rows (macros/incremental/mart_snapshots.sql).
{{ config(materialized='incremental', incremental_strategy='append', on_schema_change='fail',
          pre_hook="{{ delete_orders_recomputed_since_snapshot(with_rerated=true) }}",
          post_hook=["{{ refresh_commission_state() }}", "{{ analyze_after_full_build() }}",
                     "{{ ensure_unique_key(['partner_id', 'order_id', 'attribution_model', 'referrer_partner_id']) }}",
                     "{{ keep_row_count() }}"]) }}
-- depends_on: {{ ref('int_orders__enriched') }}
select
    partner_id,
    order_id,
    attribution_model,
    referrer_partner_id,
    attribution_reason,
    credit,
    attributed_revenue_rc,
    net_attributed_revenue_rc,
    refund_leakage_rc,
    is_commission_model,
    commission_rc,
    case when is_commission_model and referrer_partner_id is not null
         then coalesce(programme_state, {{ commission_state('lock_date') }}) end
        as commission_state,
    network_id,
    click_id,
    referral_code,
    order_date,
    lock_date,
    is_new_customer,
    contract_source,
    contract_type,
    contract_effective_from,
    rate_applied,
    flat_amount,
    fx_rate,
    is_commissioned,
    held_rc,
    hold_reason,
    reviewed_at,
    tier_from_orders
from (select a.* from {{ recomputed_since_snapshot_of(ref('int_order_attribution'), 'a', with_rerated=true) }}) as a
