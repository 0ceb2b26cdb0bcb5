-- §8 programme terms on the configured model's credited rows (int_attribution__holds): volume tiers, caps, holds.
-- A programme month is (destination, referrer, UTC month of the order), across every contract in force during it;
-- earlier orders come first by (ordered_at, order_id in (length, text) order). A commissioned row is a credited row
-- of the configured model that is neither held, rejected nor approved after its lock date (programme_state null).
--   Tiers (percent only): with n earlier commissioned orders in the programme month, the rate of the row's own
--   contract's last tier with from_orders <= n, else the base rate; a first order earns new_customer_rate below the
--   first tier and the higher of the two from a tier on.
--   Caps: amount = rate x net commissionable x FX x credit (flat: amount x credit, 0 with nothing commissionable),
--   then cap_per_order, then rounded to cents (= held_rc for a held row), then the row's own cap_per_month less
--   what the earlier commissioned orders of the month finally earned (ops.capped_running_sum, alliance/migrations/
--   0010: each row earns min(amount, max(0, cap - earlier earnings)); no cap = the whole amount).
--   cap_room is that monthly room, kept for the clawbacks (int_commission_clawbacks), which use it as at the lock;
--   is_capped says a cap took something off (the statements' capped flag).
-- Rows of the other models and organic rows pass through with null programme columns.
-- Ephemeral: compiled into int_order_attribution's statement; int_orders__changed puts every order of a changed
-- order's (destination, month) in scope when that destination has monthly terms, so each window here is whole.
{{ config(materialized='ephemeral') }}
with programme_rows as (
    select
        h.*,
        date_trunc('month', h.order_date::timestamp)::date as programme_month,
        h.programme_state is null                          as is_commissioned,
        count(*) filter (where h.programme_state is null) over w_earlier as earlier_commissioned_orders
    from {{ ref('int_attribution__holds') }} as h
    where h.is_commission_model and h.referrer_partner_id is not null
    window w_earlier as (
        partition by h.partner_id, h.referrer_partner_id, date_trunc('month', h.order_date::timestamp)
        order by h.ordered_at, length(h.order_id), h.order_id
        rows between unbounded preceding and 1 preceding
    )
),

tiered as (
    select
        p.*,
        (
            select (t.tier ->> 'rate')::numeric
            from jsonb_array_elements(p.tiers) as t (tier)
            where (t.tier ->> 'from_orders')::bigint <= p.earlier_commissioned_orders
            order by (t.tier ->> 'from_orders')::bigint desc
            limit 1
        ) as tier_rate
    from programme_rows as p
),

order_amounts as (
    select
        t.*,
        case
            when t.contract_type <> 'percent' then null
            when t.tier_rate is null and t.is_new_customer and t.new_customer_rate is not null
                then t.new_customer_rate
            when t.tier_rate is null then t.base_rate
            when t.is_new_customer and t.new_customer_rate is not null then greatest(t.tier_rate, t.new_customer_rate)
            else t.tier_rate
        end as programme_rate
    from tiered as t
),

capped_per_order as (
    select
        a.*,
        {{ cents('least(a.uncapped_amount, coalesce(a.cap_per_order, a.uncapped_amount))') }} as order_capped_rc
    from (
        select
            o.*,
            case
                when o.contract_type = 'percent' then o.programme_rate * o.net_commissionable_amount * o.fx_rate * o.credit
                when o.contract_type = 'flat' and o.net_commissionable_amount > 0 then o.flat_amount * o.credit
                else 0::numeric
            end as uncapped_amount
        from order_amounts as o
    ) as a
),

running as (
    select
        c.*,
        ops.capped_running_sum(case when c.is_commissioned then c.order_capped_rc else 0 end, c.cap_per_month)
            over w_through as earned_through
    from capped_per_order as c
    window w_through as (
        partition by c.partner_id, c.referrer_partner_id, c.programme_month
        order by c.ordered_at, length(c.order_id), c.order_id
        rows unbounded preceding
    )
),

earned as (
    select
        r.*,
        coalesce(lag(r.earned_through) over w_month, 0) as earned_before
    from running as r
    window w_month as (
        partition by r.partner_id, r.referrer_partner_id, r.programme_month
        order by r.ordered_at, length(r.order_id), r.order_id
    )
)

select
    e.*,
    case when e.cap_per_month is not null then {{ cents('greatest(0, e.cap_per_month - e.earned_before)') }} end as cap_room,
    case when e.is_commissioned then e.earned_through - e.earned_before end                   as programme_commission_rc,
    case when e.programme_state is not null then e.order_capped_rc end                        as held_rc,
    -- §9.1 the statement's capped flag: what the row earns (or would earn, held) is below its amount uncapped
    case when e.is_commissioned then e.earned_through - e.earned_before else e.order_capped_rc end
        < {{ cents('e.uncapped_amount') }}                                                     as is_capped
from earned as e
union all
select
    h.*,
    null::date, null::boolean, null::bigint, null::numeric, null::numeric, null::numeric, null::numeric,
    null::numeric, null::numeric, null::numeric, null::numeric, null::numeric, null::boolean
from {{ ref('int_attribution__holds') }} as h
where not (h.is_commission_model and h.referrer_partner_id is not null)
