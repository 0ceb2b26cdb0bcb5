-- FX rates to the reporting currency by date.
select
    rate_date,
    upper(currency)     as currency,
    rate_to_reporting
from {{ source('raw', 'cfg_fx_rates') }}
