-- One row per referral-network click.
select
    network_id,
    click_id,
    lower(trim(payload ->> 'ReferrerPartnerId'))     as referrer_partner_id,
    lower(trim(payload ->> 'DestinationPartnerId'))  as destination_partner_id,
    clicked_at,
    nullif(trim(payload ->> 'ReferralCode'), '')     as referral_code,
    customer_key,
    loaded_at                                        as _loaded_at
from {{ source('raw', 'clicks') }}
