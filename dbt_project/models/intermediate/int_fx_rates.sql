-- FX rates to the reporting currency; the reporting currency itself needs no rows (rate 1, applied downstream).
{{ config(tags=['config']) }}  -- the config's rates: an incremental build leaves this table alone (selectors.yml)
select rate_date, currency, rate_to_reporting
from {{ ref('stg_cfg__fx_rates') }}
where currency <> upper('{{ var("reporting_currency") }}')
