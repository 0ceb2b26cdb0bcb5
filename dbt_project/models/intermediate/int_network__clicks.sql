-- Every referral click, typed once (incremental: clicks are immutable events; only newly loaded ones are read, and
-- only new or different ones written).
-- Rows written by this run carry `_dbt_run_at` = this run, which is how int_orders__changed finds new clicks.
{{ config(materialized='incremental', unique_key=['network_id', 'click_id'], incremental_strategy='delete+insert',
          post_hook="{{ analyze_after_full_build() }}",
          indexes=[{'columns': ['network_id', 'click_id'], 'unique': true},
                   {'columns': ['destination_partner_id', 'customer_key']},
                   {'columns': ['_dbt_run_at']}, {'columns': ['_loaded_at']}]) }}

{%- set click_columns = ['network_id', 'click_id', 'referrer_partner_id', 'destination_partner_id', 'clicked_at',
                         'referral_code', 'customer_key', '_loaded_at'] %}

select
    k.*,
    {{ dbt_run_at() }} as _dbt_run_at,
{%- if is_incremental() %}
    -- the version this run replaces (null for a new click): the daily totals take its click back
    p.referrer_partner_id    as _previous_referrer_partner_id,
    p.destination_partner_id as _previous_destination_partner_id,
    p.clicked_at             as _previous_clicked_at
from (
    select {{ click_columns | join(', ') }} from {{ ref('stg_network__clicks') }}
    {{ loaded_since_last_run() }}
) as k
-- a click re-read by the overlap as it was processed before is left alone: the last (successful) run handled it
-- (looked up click by click on the unique index: a run reads a few thousand clicks, the table holds millions)
left join lateral (
    select * from {{ this }} as t where t.network_id = k.network_id and t.click_id = k.click_id offset 0
) as p on true
-- (an equal _loaded_at is the same landing, so the payload is not parsed again to compare it)
where p.click_id is null
   or (k._loaded_at is distinct from p._loaded_at
       and (k.{{ click_columns | join(', k.') }}) is distinct from (p.{{ click_columns | join(', p.') }}))
{%- else %}
    null::text               as _previous_referrer_partner_id,
    null::text               as _previous_destination_partner_id,
    null::timestamptz        as _previous_clicked_at
from {{ ref('stg_network__clicks') }} as k
{%- endif %}
