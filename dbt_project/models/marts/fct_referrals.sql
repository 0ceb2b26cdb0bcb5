-- Every referral click, as landed from the referral networks.
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
