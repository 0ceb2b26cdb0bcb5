-- §8.5 review decisions on held orders from the config's reviews CSV.
select
    partner_id,
    order_id,
    decision,
    reviewed_at,
    {{ utc_date('reviewed_at') }} as review_date,
    line
from {{ source('raw', 'cfg_reviews') }}
