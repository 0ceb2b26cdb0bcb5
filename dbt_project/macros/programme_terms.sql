{#- §8.1-2 tiers and caps over `rows` (a relation or a CTE name), which carries the programme's inputs per
    (order, model, referrer) row: partner_id, order_id, referrer_partner_id, is_commission_model, order_date,
    ordered_at, programme_state, tiers, contract_type, is_new_customer, new_customer_rate, base_rate,
    net_commissionable_amount, fx_rate, credit, flat_amount, cap_per_order, cap_per_month. The configured model's
    credited rows come out with their programme columns (whole programme months must be in `rows`: each row's tier
    and cap room depend on the earlier rows of its month). Called by int_attribution__programme (the rows a build
    computes) and by rerate_programme_months (the stored rows of the months an incremental run touched), so the rules
    are written once. -#}
{% macro programme_terms(rows) %}
with programme_rows as (
    select
        h.*,
        date_trunc('month', h.order_date::timestamp)::date as programme_month,
        h.programme_state is null                          as is_commissioned,
        count(*) filter (where h.programme_state is null) over w_earlier as earlier_commissioned_orders
    from {{ rows }} as h
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
        reached.rate        as tier_rate,
        reached.from_orders as tier_from_orders
    from programme_rows as p
    left join lateral (
        select (t.tier ->> 'rate')::numeric as rate, (t.tier ->> 'from_orders')::bigint as from_orders
        from jsonb_array_elements(p.tiers) as t (tier)
        -- p's columns alone: a per-row gate, so rows without tiers (or not percent) never expand a jsonb array
        where p.contract_type = 'percent' and p.tiers is not null
          and (t.tier ->> 'from_orders')::bigint <= p.earlier_commissioned_orders
        order by (t.tier ->> 'from_orders')::bigint desc
        limit 1
    ) as reached on true
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
            {{ uncapped_amount('o', 'o.programme_rate') }} as uncapped_amount
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
    case when e.programme_state is not null then e.order_capped_rc end                        as held_rc
from earned as e
{% endmacro %}

{#- What a configured-model credited row earns (programme_terms' output `p`): its programme commission when
    commissioned, its held_rc when approved after its lock date, else 0 (held, rejected). -#}
{% macro programme_commission(p) -%}
    case when {{ p }}.is_commissioned then {{ p }}.programme_commission_rc
         when {{ p }}.programme_state = 'approved' then {{ p }}.held_rc
         else 0::numeric end
{%- endmacro %}

{#- The programme columns int_order_attribution stores for a configured-model credited row, in the order
    rerate_programme_months compares and rewrites them. None is cumulative (no running count or cap room): a change
    early in a month then rewrites only the rows whose tier or pay moved, not every later row of the month. -#}
{% macro programme_columns(p) -%}
    {{ p }}.programme_rate as rate_applied,
    {{ p }}.tier_from_orders,
    {{ p }}.order_capped_rc,
    {{ programme_commission(p) }} as commission_rc,
    {{ p }}.held_rc
{%- endmacro %}

{#- §8.2 a row's amount before any cap: rate x net commissionable x FX x credit (flat: amount x credit, 0 with nothing
    commissionable). `p` names a row with contract_type, net_commissionable_amount, fx_rate, credit and flat_amount;
    `rate` its rate (programme_terms' programme_rate, int_order_attribution's rate_applied). The statements' capped
    flag compares a row's pay with it (partner_statement_lines). -#}
{% macro uncapped_amount(p, rate) -%}
    case
        when {{ p }}.contract_type = 'percent' then {{ rate }} * {{ p }}.net_commissionable_amount * {{ p }}.fx_rate * {{ p }}.credit
        when {{ p }}.contract_type = 'flat' and {{ p }}.net_commissionable_amount > 0 then {{ p }}.flat_amount * {{ p }}.credit
        else 0::numeric
    end
{%- endmacro %}
