-- §8.4 manual adjustments from the config's adjustments CSV, in the reporting currency.
select
    line,
    date_trunc('month', month::timestamp)::date as month,
    referrer_partner_id,
    destination_partner_id,
    {{ cents('amount') }}                       as amount_rc,
    reason
from {{ source('raw', 'cfg_adjustments') }}
