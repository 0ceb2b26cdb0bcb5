-- Every referral click, typed once (incremental: clicks are immutable events; only newly loaded ones are read, and
-- only new or different ones written).
-- Rows written by this run carry `_dbt_run_at` = this run, which is how int_orders__changed finds new clicks.
{{ config(materialized='incremental', unique_key=['network_id', 'click_id'], incremental_strategy='delete+insert',
          indexes=[{'columns': ['network_id', 'click_id'], 'unique': true},
                   {'columns': ['destination_partner_id', 'customer_key']},
                   {'columns': ['_dbt_run_at']}]) }}

{%- set click_columns = ['network_id', 'click_id', 'referrer_partner_id', 'destination_partner_id', 'clicked_at',
                         'referral_code', 'customer_key', '_loaded_at'] %}

select
    k.*,
    {{ dbt_run_at() }} as _dbt_run_at
from (
    select {{ click_columns | join(', ') }} from {{ ref('stg_network__clicks') }}
    {{ loaded_since_last_run() }}
) as k
{%- if is_incremental() %}
-- a click re-read by the overlap as it was processed before is left alone: the last (successful) run handled it
left join {{ this }} as p on p.network_id = k.network_id and p.click_id = k.click_id
where p.click_id is null
   or (k.{{ click_columns | join(', k.') }}) is distinct from (p.{{ click_columns | join(', p.') }})
{%- endif %}
