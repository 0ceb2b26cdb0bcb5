-- fct_order_attribution, checked per order in one aggregation (one scan, grouped on the order key, instead of a
-- sort per check): for every attribution model the order's credits sum to 1 (a model with no rows sums to 0), every
-- referrer is a known partner; and the order is in fct_orders and is neither a test order nor cancelled on or
-- before its lock date (§6.1: those get no attribution rows). A failing row is an order with the problems it has.
-- No (model, referrer) pair twice: the table's unique index (enforced_unique_key in _marts.yml). An incremental run checks the orders it recomputed
-- (macros/incremental/test_scoping.sql), selected before the aggregation.
{%- set models = attribution_models() %}
with per_order as (
    select
        a.partner_id,
        a.order_id,
        bool_or(a.referrer_partner_id is not null and p.partner_id is null)          as has_unknown_referrer,
        {%- for model in models %}
        coalesce(sum(a.credit) filter (where a.attribution_model = '{{ model }}'), 0) as {{ model }}_credit
        {{- "," if not loop.last }}
        {%- endfor %}
    from {{ scoped(ref('fct_order_attribution'), 'changed_orders', 'a') }}
    left join {{ ref('stg_cfg__partners') }} as p on p.partner_id = a.referrer_partner_id
    group by a.partner_id, a.order_id
),

checked as (
    select
        a.partner_id,
        a.order_id,
        concat_ws(', ',
            case when o.order_id is null then 'order missing from fct_orders' end,
            case when o.is_test or (o.is_cancelled and not o.is_cancelled_after_lock)
                 then 'test or cancelled order attributed' end,
            case when a.has_unknown_referrer then 'referrer is not a known partner' end
            {%- for model in models %},
            case when abs(a.{{ model }}_credit - 1) > 0.000000001
                 then '{{ model }} credits sum to ' || a.{{ model }}_credit end
            {%- endfor %}
        ) as problems
    from per_order as a
    left join {{ ref('fct_orders') }} as o on o.partner_id = a.partner_id and o.order_id = a.order_id
)

select * from checked where problems <> ''
