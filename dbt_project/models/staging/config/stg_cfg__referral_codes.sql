-- Referral codes (normalised upper(trim())) and the partner each credits.
select
    upper(trim(code)) as code,
    partner_id
from {{ source('raw', 'cfg_referral_codes') }}
