-- §9.1 the lines of every partner's monthly statement, both directions, never netted: as referrer (`earned`, the
-- counterparty is the destination) and as destination (`owed`, the counterparty is the referrer). Each line is in
-- both statements: the referrer's earned section and the destination's owed section.
--   order     a commissioned order of the month (configured model): its credit, amounts, rate and commission
--   clawback / manual / approval   the month's lines of commission_adjustments, as published there
--   held / rejected   rows still held or rejected in review, listed apart: outside the totals, with held_rc
-- The in-total lines of (partner, month, direction, counterparty) add up to partner_balances.balance_rc of that
-- (referrer, destination, month) (assert_statement_lines_match_balances). Nothing is recomputed here: the money
-- comes from int_order_attribution (what fct_order_attribution publishes) and commission_adjustments.
-- Incremental, as fct_order_attribution: the lines of the orders recomputed or re-rated since this schema's snapshot
-- are replaced, every adjustment line is written again, and the state of the other lines follows the run date
-- (macros/incremental/mart_snapshots.sql). At 1M orders rebuilding the table whole took ~5 s of every run.
{{ config(materialized='incremental', incremental_strategy='append', on_schema_change='fail',
          pre_hook="{{ delete_statement_lines_to_rewrite() }}",
          post_hook=["{{ refresh_commission_state(column='state', lock_date=lock_date('month')) }}",
                     "{{ analyze_after_full_build() }}",
                     "{{ ensure_unique_key(['partner_id', 'direction', 'counterparty_partner_id', 'line_key']) }}",
                     "{{ ensure_partial_index('other', ['line_kind'], \"line_kind not in ('order', 'held', 'rejected')\") }}",
                     "{{ keep_row_count() }}", "{{ keep_statement_line_totals() }}"],
          indexes=[{'columns': ['destination_partner_id', 'order_id']}]) }}
-- depends_on: {{ ref('int_orders__enriched') }}
with order_rows as (
    select
        a.referrer_partner_id,
        a.partner_id                                                 as destination_partner_id,
        date_trunc('month', a.order_date::timestamp)::date           as month,
        case when a.is_commissioned then 'order' else a.programme_state end as line_kind,
        a.is_commissioned                                            as in_totals,
        'order:' || a.order_id                                       as line_key,
        a.order_id,
        a.order_date                                                 as line_date,
        a.attribution_model,
        a.credit,
        {{ cents('a.commissionable_amount * a.fx_rate') }}           as commissionable_amount_rc,
        {{ cents('a.refunded_before_lock_amount * a.fx_rate') }}     as refunded_before_lock_rc,
        a.rate_applied,
        -- a cap took something off: what the row earns (held: would earn) is below its amount uncapped
        coalesce(case when a.is_commissioned then a.commission_rc else a.held_rc end, 0)
            < {{ cents(uncapped_amount('a', 'a.rate_applied')) }}  as is_capped,
        a.commission_rc                                              as amount_rc,
        a.held_rc,
        case when a.is_commissioned then {{ commission_state('a.lock_date') }} else a.programme_state end as state,
        case when not a.is_commissioned then a.hold_reason end       as reason
    from (select a.* from {{ recomputed_since_snapshot_of(ref('int_order_attribution'), 'a', with_rerated=true) }}) as a
    where a.is_commission_model
      and a.referrer_partner_id is not null
      and (a.is_commissioned or a.programme_state in ('held', 'rejected'))
),

adjustment_rows as (
    select
        l.referrer_partner_id,
        l.destination_partner_id,
        l.month,
        l.kind                                                       as line_kind,
        true                                                         as in_totals,
        l.line_key,
        l.order_id,
        l.line_date,
        null::text                                                   as attribution_model,
        null::numeric                                                as credit,
        null::numeric                                                as commissionable_amount_rc,
        null::numeric                                                as refunded_before_lock_rc,
        null::numeric                                                as rate_applied,
        null::boolean                                                as is_capped,
        l.amount_rc,
        null::numeric                                                as held_rc,
        {{ commission_state(lock_date('l.month')) }}                 as state,
        l.reason
    from {{ ref('commission_adjustments') }} as l
),

lines as (
    select * from order_rows
    union all
    select * from adjustment_rows
)

select
    -- the key first: (partner_id, direction, counterparty_partner_id, line_key) is unique
    case when d.direction = 'earned' then l.referrer_partner_id else l.destination_partner_id end as partner_id,
    d.direction,
    case when d.direction = 'earned' then l.destination_partner_id else l.referrer_partner_id end
        as counterparty_partner_id,
    l.line_key,
    l.month,
    l.referrer_partner_id,
    l.destination_partner_id,
    l.line_kind,
    l.in_totals,
    l.order_id,
    l.line_date,
    l.attribution_model,
    l.credit,
    l.commissionable_amount_rc,
    l.refunded_before_lock_rc,
    l.rate_applied,
    l.is_capped,
    l.amount_rc,
    l.held_rc,
    l.state,
    l.reason
from lines as l
cross join (values ('earned'), ('owed')) as d (direction)
