-- §8.3 clawback lines: for each row commissioned at the lock date under a contract with `clawback: true`, every
-- refund dated after the lock date and a cancellation after it, in (date, refund id) order with a cancellation after
-- the refunds of its day (it ends the sequence), adds -(C_before - C_after) in the event's UTC month. C is the row's
-- commission recomputed with the order's own late events up to this one: its rate (tier included), credit and the
-- order date's FX rate as at the lock, cap_per_order, cents, then its monthly-cap room as at the lock (no more than
-- the commission it earned at the lock: see `recomputed`); a
-- cancellation leaves 0. No other order changes, and the lines add up to at most the commission (C never goes
-- below 0). Lines of 0 (a refund the caps absorb) are not written.
-- Fast: the orders with a late event are found in int_orders__enriched (one row per order) and their attribution
-- rows looked up by key, instead of scanning every model's rows.
with orders as (
    select e.partner_id, e.order_id, e.lock_date, e.is_cancelled, e.cancelled_at
    from {{ ref('int_orders__enriched') }} as e
    where (e.refunded_after_lock_amount > 0 or (e.is_cancelled and not e.is_cancelled_effective))
      and exists (
          select 1 from {{ ref('int_order_attribution') }} as a
          where a.partner_id = e.partner_id and a.order_id = e.order_id and a.clawback and a.is_commissioned
      )
),

-- materialized: planned on its own, it reads the clawback rows through the partial index (int_order_attribution's
-- post-hooks); inlined, PostgreSQL scanned all of int_order_attribution every run (1.5 s of a one-order build at 1M)
commissioned as materialized (
    select
        a.partner_id, a.order_id, a.referrer_partner_id, a.lock_date, a.contract_type, a.rate_applied, a.flat_amount,
        a.credit, a.fx_rate, a.net_commissionable_amount, a.cap_per_order, a.commission_rc
    from orders as o
    inner join {{ ref('int_order_attribution') }} as a on a.partner_id = o.partner_id and a.order_id = o.order_id
    where a.clawback and a.is_commissioned
),

late_events as (
    select o.partner_id, o.order_id, {{ utc_date('f.refunded_at') }} as event_date, 0 as event_rank,
           f.refund_id::text as event_id, f.refunded_amount
    from orders as o
    inner join {{ ref('int_order_refunds__unioned') }} as f on f.partner_id = o.partner_id and f.order_id = o.order_id
    where {{ utc_date('f.refunded_at') }} > o.lock_date
    union all
    select o.partner_id, o.order_id, {{ utc_date('o.cancelled_at') }}, 1, 'cancellation', 0::numeric
    from orders as o
    where o.is_cancelled and {{ utc_date('o.cancelled_at') }} > o.lock_date
),

sequenced as (
    select
        *,
        row_number() over w_order                                                  as event_seq,
        sum(refunded_amount) over (w_order rows unbounded preceding)               as late_refunds,
        coalesce(bool_or(event_rank = 1) over (w_order rows between unbounded preceding and 1 preceding), false)
                                                                                   as after_cancellation
    from late_events
    window w_order as (partition by partner_id, order_id order by event_date, event_rank, length(event_id), event_id)
),

recomputed as (
    select
        c.partner_id, c.order_id, c.referrer_partner_id, c.commission_rc, s.event_seq, s.event_date, s.event_rank,
        s.event_id, c.lock_date,
        case
            when s.event_rank = 1 then 0::numeric
            -- the monthly room as at the lock: a row the monthly cap cut earned exactly its room, and a row it did not
            -- cut earned its whole capped amount, which a late refund can only lower; either way, at most its commission
            else least({{ cents('least(a.uncapped, coalesce(c.cap_per_order, a.uncapped))') }}, c.commission_rc)
        end as commission_after
    from commissioned as c
    inner join sequenced as s on s.partner_id = c.partner_id and s.order_id = c.order_id and not s.after_cancellation
    cross join lateral (
        select case
            when c.contract_type = 'percent'
                then c.rate_applied * greatest(0, c.net_commissionable_amount - s.late_refunds) * c.fx_rate * c.credit
            when c.net_commissionable_amount - s.late_refunds > 0 then c.flat_amount * c.credit
            else 0::numeric
        end as uncapped
    ) as a
),

lines as (
    select
        *,
        commission_after - coalesce(lag(commission_after) over (
            partition by partner_id, order_id, referrer_partner_id order by event_seq
        ), commission_rc) as amount_rc
    from recomputed
)

select
    partner_id                                           as destination_partner_id,
    referrer_partner_id,
    order_id,
    date_trunc('month', event_date::timestamp)::date     as month,
    event_date,
    event_id,
    amount_rc,
    case when event_rank = 1 then 'cancellation on ' || event_date || ', after the lock date ' || lock_date
         else 'refund ' || event_id || ' on ' || event_date || ', after the lock date ' || lock_date end as reason
from lines
where amount_rc <> 0
