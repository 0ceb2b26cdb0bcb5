-- Every referral click, as landed from the referral networks. Incremental: clicks are immutable; the ones landed
-- since this schema's snapshot are added (replacing any copy, so a rerun is harmless).
{{ config(materialized='incremental', incremental_strategy='append', on_schema_change='fail',
          post_hook=["{{ analyze_after_full_build() }}", "{{ keep_row_count() }}"],
          pre_hook="{{ delete_clicks_landed_since_snapshot() }}",
          indexes=[{'columns': ['network_id', 'click_id'], 'unique': true}]) }}
select
    network_id,
    click_id,
    referrer_partner_id,
    destination_partner_id,
    clicked_at,
    {{ utc_date('clicked_at') }}                          as click_date,
    referral_code,
    customer_key,
    (referrer_partner_id = destination_partner_id)        as is_self_referral
from {{ ref('int_network__clicks') }}
{%- if is_incremental() %}
where _dbt_run_at > {{ mart_watermark('clicks_through') }}
{%- endif %}
