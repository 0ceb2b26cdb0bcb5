-- Every referral click, typed once (incremental: clicks are immutable events; only newly loaded ones are read).
-- Rows written by this run carry `_dbt_run_at` = this run, which is how int_orders__changed finds new clicks.
{{ config(materialized='incremental', unique_key=['network_id', 'click_id'], incremental_strategy='delete+insert',
          indexes=[{'columns': ['network_id', 'click_id'], 'unique': true},
                   {'columns': ['destination_partner_id', 'customer_key']}]) }}

select
    network_id,
    click_id,
    referrer_partner_id,
    destination_partner_id,
    clicked_at,
    referral_code,
    customer_key,
    _loaded_at,
    {{ dbt_run_at() }} as _dbt_run_at
from {{ ref('stg_network__clicks') }}
{{ loaded_since_last_run() }}
