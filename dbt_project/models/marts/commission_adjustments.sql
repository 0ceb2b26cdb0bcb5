-- §8.6 the lines beside the commissioned orders, per (referrer, destination, month): clawbacks of refunds and
-- cancellations after the lock date (int_commission_clawbacks), manual adjustments from the config (§8.4), and
-- approvals of held rows reviewed after their lock date (§8.5: held_rc in the month of the review). Lines never
-- count toward tiers or caps; partner_balances adds them to the month's commission.
select
    'clawback'                                         as kind,
    month,
    referrer_partner_id,
    destination_partner_id,
    order_id,
    amount_rc,
    reason,
    event_date                                         as line_date,
    'clawback:' || order_id || ':' || event_id         as line_key
from {{ ref('int_commission_clawbacks') }}
union all
select
    'manual',
    month,
    referrer_partner_id,
    destination_partner_id,
    null,
    amount_rc,
    reason,
    month,
    'manual:' || line
from {{ ref('stg_cfg__adjustments') }}
union all
select
    'approval',
    date_trunc('month', {{ utc_date('reviewed_at') }}::timestamp)::date,
    referrer_partner_id,
    partner_id,
    order_id,
    held_rc,
    'held (' || hold_reason || '), approved on ' || {{ utc_date('reviewed_at') }} || ', after the lock date '
        || lock_date,
    {{ utc_date('reviewed_at') }},
    'approval:' || order_id
from {{ ref('int_order_attribution') }}
where programme_state = 'approved'
