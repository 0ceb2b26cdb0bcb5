{#- The rows the partner totals (int_partner_daily_totals, int_partner_monthly_totals) sum: one contribution per
    credited row of the configured model or per click, with `sign` 1 (counts now) or -1 (taken back). -#}

{#- A credited row counts for its referrer on its order date (§8.6: orders and revenue include held rows and exclude
    rejected ones; the commission counts commissioned orders only), a commissioned row for its destination (owed). -#}
{% macro daily_order_contributions(rows, sign) %}
    -- as referrer
    select
        referrer_partner_id as partner_id, order_date as kpi_date,
        0 as clicks_sent, {{ sign }} as referred_orders,
        case when is_new_customer then {{ sign }} else 0 end as referred_new_customer_orders,
        {{ sign }} * own_revenue_rc as attributed_revenue_rc,
        {{ sign }} * own_net_revenue_rc as net_attributed_revenue_rc,
        case when is_commissioned then {{ sign }} * commission_rc else 0 end as commission_earned_rc,
        {{ sign }} * own_refund_leakage_rc as refund_leakage_rc,
        0 as owed_orders, 0::numeric as commission_owed_rc
    from {{ rows }}
    where is_commission_model and referrer_partner_id is not null and programme_state is distinct from 'rejected'
    union all
    -- as destination
    select
        partner_id, order_date,
        0, 0, 0, 0::numeric, 0::numeric, 0::numeric, 0::numeric,
        {{ sign }}, {{ sign }} * commission_rc
    from {{ rows }}
    where is_commission_model and referrer_partner_id is not null and is_commissioned
{% endmacro %}

{#- A click counts for its referrer on its UTC click date; `from` and `where` follow the call. -#}
{% macro daily_click_contributions(referrer, clicked_at, sign) %}
    select
        {{ referrer }} as partner_id, {{ utc_date(clicked_at) }} as kpi_date,
        {{ sign }} as clicks_sent, 0, 0, 0::numeric, 0::numeric, 0::numeric, 0::numeric, 0, 0::numeric
{% endmacro %}

{#- A credited row counts for its (referrer, destination, order month): orders and revenue unless rejected (§8.6),
    the commission of commissioned rows, the held_rc of rows still held. -#}
{% macro monthly_order_contributions(rows, sign) %}
    select
        referrer_partner_id,
        partner_id                                       as destination_partner_id,
        date_trunc('month', order_date::timestamp)::date as month,
        case when programme_state is distinct from 'rejected' then {{ sign }} else 0 end as attributed_orders,
        case when programme_state is distinct from 'rejected' then {{ sign }} * own_revenue_rc else 0 end
                                                         as attributed_revenue_rc,
        case when programme_state is distinct from 'rejected' then {{ sign }} * own_net_revenue_rc else 0 end
                                                         as net_attributed_revenue_rc,
        case when is_commissioned then {{ sign }} * commission_rc else 0 end as commission_rc,
        case when programme_state is distinct from 'rejected' then {{ sign }} * own_refund_leakage_rc else 0 end
                                                         as refund_leakage_rc,
        case when is_commissioned then {{ sign }} else 0 end as commissioned_orders,
        case when programme_state = 'held' then {{ sign }} else 0 end as held_orders,
        case when programme_state = 'held' then {{ sign }} * held_rc else 0 end as held_rc
    from {{ rows }}
    where is_commission_model and referrer_partner_id is not null
{% endmacro %}
