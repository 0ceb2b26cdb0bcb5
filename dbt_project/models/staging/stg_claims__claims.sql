-- §9.2 partner claims as landed from the config's claims CSV files (connectors/claims.py): the valid rows only, one
-- per claim_id (identical repeats counted once, conflicting versions quarantined before they get here).
select
    claim_id,
    referrer_partner_id,
    destination_partner_id,
    order_id,
    claimed_at,
    source_file,
    source_line,
    loaded_at
from {{ source('raw', 'claims') }}
