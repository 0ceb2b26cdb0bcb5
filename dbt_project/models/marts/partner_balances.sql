-- Who owes whom: per referrer, destination and UTC month of the orders (configured model only), the commission of
-- the month's commissioned orders (= what the destination owes), §8 clawback and adjustment lines of the month
-- (commission_adjustments), what is still held, the balance, the lock state and the refund leakage after the lock
-- date, from the additive monthly totals (int_partner_monthly_totals). A row exists for a month with a commissioned
-- or held order, or a line. Every order of a month has the month's lock date, so the month is locked or pending as
-- a whole.
with lines as (
    select
        referrer_partner_id,
        destination_partner_id,
        month,
        sum(amount_rc) filter (where kind = 'clawback')              as clawback_rc,
        sum(amount_rc) filter (where kind in ('manual', 'approval')) as adjustments_rc
    from {{ ref('commission_adjustments') }}
    group by referrer_partner_id, destination_partner_id, month
),

months as (
    select
        coalesce(t.referrer_partner_id, l.referrer_partner_id)       as referrer_partner_id,
        coalesce(t.destination_partner_id, l.destination_partner_id) as destination_partner_id,
        coalesce(t.month, l.month)                                   as month,
        coalesce(t.attributed_orders, 0)                             as attributed_orders,
        coalesce(t.attributed_revenue_rc, 0)                         as attributed_revenue_rc,
        coalesce(t.net_attributed_revenue_rc, 0)                     as net_attributed_revenue_rc,
        coalesce(t.commission_rc, 0)                                 as commission_rc,
        coalesce(t.refund_leakage_rc, 0)                             as refund_leakage_rc,
        coalesce(t.commissioned_orders, 0)                           as commissioned_orders,
        coalesce(t.held_orders, 0)                                   as held_orders,
        coalesce(t.held_rc, 0)                                       as held_rc,
        coalesce(l.clawback_rc, 0)                                   as clawback_rc,
        coalesce(l.adjustments_rc, 0)                                as adjustments_rc,
        {{ lock_date('coalesce(t.month, l.month)') }}                as lock_date
    from (
        select * from {{ ref('int_partner_monthly_totals') }} where commissioned_orders > 0 or held_orders > 0
    ) as t
    full outer join lines as l
        on l.referrer_partner_id = t.referrer_partner_id
       and l.destination_partner_id = t.destination_partner_id
       and l.month = t.month
)

select
    referrer_partner_id,
    destination_partner_id,
    month,
    attributed_orders::bigint                                as attributed_orders,
    {{ cents('attributed_revenue_rc') }}                     as attributed_revenue_rc,
    {{ cents('net_attributed_revenue_rc') }}                 as net_attributed_revenue_rc,
    {{ cents('commission_rc') }}                             as commission_earned_rc,
    {{ cents('commission_rc') }}                             as commission_owed_rc,
    {{ cents("case when " ~ commission_state('lock_date') ~ " = 'locked' then commission_rc else 0 end") }}
                                                             as commission_locked_rc,
    {{ cents("case when " ~ commission_state('lock_date') ~ " = 'pending' then commission_rc else 0 end") }}
                                                             as commission_pending_rc,
    {{ cents('refund_leakage_rc') }}                         as refund_leakage_rc,
    lock_date,
    {{ commission_state('lock_date') }}                      as state,
    commissioned_orders::bigint                              as commissioned_orders,
    held_orders::bigint                                      as held_orders,
    {{ cents('commission_rc') }}                             as commission_rc,
    {{ cents('clawback_rc') }}                               as clawback_rc,
    {{ cents('adjustments_rc') }}                            as adjustments_rc,
    {{ cents('held_rc') }}                                   as held_rc,
    {{ cents('commission_rc + clawback_rc + adjustments_rc') }} as balance_rc
from months
