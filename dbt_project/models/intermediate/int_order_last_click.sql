-- §6.3 last click: the latest eligible click wins; ties go to the greatest click_id in (length, text) order.
with ranked as (
    select
        c.*,
        row_number() over (
            partition by c.partner_id, c.order_id
            order by c.clicked_at desc, length(c.click_id) desc, c.click_id desc, c.network_id desc
        ) as recency_rank
    from {{ ref('int_order_eligible_clicks') }} as c
)

select partner_id, order_id, network_id, click_id, referrer_partner_id, clicked_at, referral_code
from ranked
where recency_rank = 1
