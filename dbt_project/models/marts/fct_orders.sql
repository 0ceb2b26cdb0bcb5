-- Every storefront order (latest version), including test and cancelled ones, with reporting-currency amounts.
-- Incremental: the orders recomputed since this schema's snapshot are replaced (macros/incremental/mart_snapshots.sql).
{{ config(materialized='incremental', incremental_strategy='append', on_schema_change='fail',
          post_hook=["{{ analyze_after_full_build() }}", "{{ keep_row_count() }}"],
          pre_hook="{{ delete_orders_recomputed_since_snapshot() }}",
          indexes=[{'columns': ['partner_id', 'order_id'], 'unique': true}]) }}
select
    partner_id,
    order_id,
    platform,
    ordered_at,
    updated_at,
    order_date,
    customer_key,
    currency,
    commissionable_amount,
    refunded_amount,
    refunded_before_lock_amount,
    fx_rate,
    {{ cents('commissionable_amount * fx_rate') }}                   as commissionable_amount_rc,
    {{ cents('refunded_amount * fx_rate') }}                         as refunded_amount_rc,
    {{ cents('(commissionable_amount - refunded_amount) * fx_rate') }} as net_amount_rc,
    {{ cents('refunded_after_lock_amount * fx_rate') }}              as refund_leakage_rc,
    cancelled_at,
    is_cancelled,
    is_cancelled and not is_cancelled_effective                      as is_cancelled_after_lock,
    is_test,
    is_new_customer,
    previous_order_at,
    lock_date
from {{ ref('int_orders__enriched') }}
{%- if is_incremental() %}
where _recomputed_at > {{ mart_watermark('orders_through') }}
{%- endif %}
