-- Partners from the config, with their default contract (commission).
select
    partner_id,
    partner_name,
    platform,
    upper(currency)                  as currency,
    commission_type,
    commission_rate,
    commission_new_customer_rate,
    commission_amount,
    commission_tiers,
    commission_cap_per_order,
    commission_cap_per_month,
    commission_clawback
from {{ source('raw', 'cfg_partners') }}
