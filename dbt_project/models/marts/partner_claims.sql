-- §9.2 each partner claim judged on current data: looked up by (destination, order_id), its status is the first that
-- applies: unknown_order, not_commissionable (test, or cancelled on or before its lock date: fct_orders),
-- rejected (the claimant's row of the configured model was rejected in review), credited (the claimant has credit
-- under the configured model, held rows included), credited_to_other, outside_window (the claimant has clicks for
-- that customer and destination, none eligible: §6.3 eligibility is what fct_order_attribution credited, so an
-- attributable order with an eligible click of the claimant credits it or someone else), no_click (guests included).
-- A table rebuilt by every run: claims are few, and judged on the run's data.
{%- set model = var('attribution_model') %}
with claims as (
    select * from {{ ref('stg_claims__claims') }}
),

-- the configured model's credited rows (held, approved and rejected ones included) of the claimed orders
credits as (
    select
        c.claim_id,
        a.referrer_partner_id,
        a.credit,
        a.attribution_reason,
        a.commission_state,
        a.referrer_partner_id = c.referrer_partner_id as is_claimant
    from claims as c
    inner join {{ ref('fct_order_attribution') }} as a
        on a.partner_id = c.destination_partner_id and a.order_id = c.order_id
    where a.attribution_model = '{{ model }}' and a.referrer_partner_id is not null and a.credit > 0
),

per_claim as (
    select
        claim_id,
        string_agg(referrer_partner_id, ',' order by credit desc, referrer_partner_id)      as credited_referrers,
        string_agg(referrer_partner_id || ' (' || trim_scale(credit)::text || ')', ', '
                   order by credit desc, referrer_partner_id)                                as credit_list,
        max(credit) filter (where is_claimant)                                               as claimant_credit,
        max(attribution_reason) filter (where is_claimant)                                   as claimant_reason,
        max(commission_state) filter (where is_claimant)                                     as claimant_state
    from credits
    group by claim_id
),

-- the claimant's clicks for the order's customer and destination, each counted once under the first that applies:
-- after the order, before the lookback, at or before the customer's previous order (the reset)
claimant_clicks as (
    select
        c.claim_id,
        count(*)                                                                              as clicks,
        count(*) filter (where k.clicked_at > o.ordered_at)                                   as after_order,
        count(*) filter (where k.clicked_at <= o.ordered_at
                           and k.clicked_at < o.ordered_at - {{ lookback_interval() }})       as before_lookback,
        count(*) filter (where k.clicked_at <= o.ordered_at
                           and k.clicked_at >= o.ordered_at - {{ lookback_interval() }}
                           and k.clicked_at <= o.previous_order_at)                           as before_reset
    from claims as c
    inner join {{ ref('fct_orders') }} as o
        on o.partner_id = c.destination_partner_id and o.order_id = c.order_id
    inner join {{ ref('fct_referrals') }} as k
        on k.destination_partner_id = c.destination_partner_id
       and k.customer_key = o.customer_key
       and k.referrer_partner_id = c.referrer_partner_id
    group by c.claim_id
),

judged as (
    select
        c.*,
        o.order_id is not null                                                  as order_found,
        o.is_test,
        o.is_cancelled and not o.is_cancelled_after_lock                        as counts_as_cancelled,
        o.customer_key is null                                                  as is_guest,
        p.credited_referrers,
        p.credit_list,
        p.claimant_credit,
        p.claimant_reason,
        p.claimant_state,
        coalesce(k.clicks, 0)                                                   as claimant_clicks,
        coalesce(k.after_order, 0)                                              as after_order,
        coalesce(k.before_lookback, 0)                                          as before_lookback,
        coalesce(k.before_reset, 0)                                             as before_reset,
        case
            when o.order_id is null then 'unknown_order'
            when o.is_test or (o.is_cancelled and not o.is_cancelled_after_lock) then 'not_commissionable'
            when p.claimant_state = 'rejected' then 'rejected'
            when p.claimant_credit is not null then 'credited'
            when p.credited_referrers is not null then 'credited_to_other'
            when o.customer_key is not null and coalesce(k.clicks, 0) > 0 then 'outside_window'
            else 'no_click'
        end                                                                     as status
    from claims as c
    left join {{ ref('fct_orders') }} as o
        on o.partner_id = c.destination_partner_id and o.order_id = c.order_id
    left join per_claim as p on p.claim_id = c.claim_id
    left join claimant_clicks as k on k.claim_id = c.claim_id
)

select
    claim_id,
    referrer_partner_id,
    destination_partner_id,
    order_id,
    claimed_at,
    status,
    case status
        when 'unknown_order' then 'no order ' || order_id || ' at ' || destination_partner_id
        when 'not_commissionable' then
            case when is_test then 'a test order' else 'the order is cancelled' end || ': no commission'
        when 'rejected' then
            'the credit of ' || referrer_partner_id || ' (' || trim_scale(claimant_credit)::text
            || ') was rejected in review'
        when 'credited' then
            'credited to ' || referrer_partner_id || ' (' || trim_scale(claimant_credit)::text || ') by '
            || claimant_reason || case when claimant_state = 'held' then ', held for review' else '' end
        when 'credited_to_other' then 'credited to ' || credit_list
        when 'outside_window' then
            referrer_partner_id || ' clicked for this customer, but outside the window: ' || concat_ws(', ',
                case when after_order > 0 then after_order || ' after the order' end,
                case when before_lookback > 0
                     then before_lookback || ' before the {{ var("lookback_days") | int }}-day lookback' end,
                case when before_reset > 0 then before_reset || ' before the customer''s previous order' end)
        else
            case when is_guest then 'a guest order: no customer to match clicks to'
                 else 'no click from ' || referrer_partner_id || ' for this customer at ' || destination_partner_id
            end
    end                                                                         as reason,
    case when status in ('credited', 'rejected') then claimant_credit end       as claimant_credit,
    credited_referrers,
    source_file,
    source_line
from judged
