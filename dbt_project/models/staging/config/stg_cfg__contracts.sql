-- Dated contract overrides: what destination pays referrer, effective [from, to).
select
    destination_partner_id,
    referrer_partner_id,
    contract_type,
    rate,
    new_customer_rate,
    amount,
    effective_from,
    effective_to,
    tiers,
    cap_per_order,
    cap_per_month,
    clawback
from {{ source('raw', 'cfg_contracts') }}
