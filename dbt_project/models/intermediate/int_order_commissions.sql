-- The configured model's credited rows of int_order_attribution (one per order and referrer), narrow: what
-- partner_kpis_daily and partner_balances aggregate. They read ~1 row per referred order here instead of scanning
-- every model's rows with all their columns.
{{ config(materialized='incremental', incremental_strategy='append', pre_hook="{{ delete_changed_orders() }}",
          indexes=[{'columns': ['partner_id', 'order_id', 'referrer_partner_id'], 'unique': true}]) }}
-- depends_on: {{ ref('int_orders__changed') }}
select
    a.partner_id,
    a.order_id,
    a.referrer_partner_id,
    a.order_date,
    a.lock_date,
    a.is_new_customer,
    a.attributed_revenue_rc,
    a.net_attributed_revenue_rc,
    a.commission_rc,
    a.refund_leakage_rc
from {{ ref('int_order_attribution') }} as a
where a.is_commission_model and a.referrer_partner_id is not null {{ only_changed_orders('a.') }}
