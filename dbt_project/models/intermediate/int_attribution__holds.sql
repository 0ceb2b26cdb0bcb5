-- §8.5 holds and reviews on the configured model's click-credited rows (int_attribution__commission_terms). For each
-- credited referrer its latest credited click w (the row's click_id: the winner in last_click / first_click, the
-- referrer's latest eligible click in the split models) is tested: the row is held when w came less than
-- holds_min_seconds before the order, or when the referrer sent more than holds_max_clicks_per_hour clicks to the
-- same customer and destination with clicked_at in (w - 3600 s, w], eligible or not, each click_id once. A review
-- (stg_cfg__reviews) decides every held row of its order: reject -> rejected; approve on or before the lock date ->
-- an ordinary commissioned row (programme_state null); approve after it -> approved. A held row without a review
-- stays held, past the lock date too. Code-credited and organic rows are never held.
-- Ephemeral: compiled into int_order_attribution's statement, scoped to the orders its run recomputes.
{{ config(materialized='ephemeral') }}
{%- set min_seconds = var('holds_min_seconds', none) %}
{%- set max_clicks = var('holds_max_clicks_per_hour', none) %}
with terms as (
    select
        t.*,
        t.attribution_model = '{{ var("attribution_model") }}' as is_commission_model
    from {{ ref('int_attribution__commission_terms') }} as t
),

signals as (
    select
        t.*,
        {%- if min_seconds is not none %}
        w.clicked_at > t.ordered_at - make_interval(secs => {{ min_seconds | int }})  as is_fast_click,
        {%- else %}
        false                                                                          as is_fast_click,
        {%- endif %}
        {%- if max_clicks is not none %}
        (
            select count(distinct k.click_id)
            from {{ ref('int_network__clicks') }} as k
            where k.destination_partner_id = t.partner_id and k.customer_key = t.customer_key
              and k.referrer_partner_id = t.referrer_partner_id
              and k.clicked_at > w.clicked_at - interval '3600 seconds' and k.clicked_at <= w.clicked_at
        ) > {{ max_clicks | int }}                                                     as is_click_burst
        {%- else %}
        false                                                                          as is_click_burst
        {%- endif %}
    from terms as t
    {%- if min_seconds is not none or max_clicks is not none %}
    left join {{ ref('int_network__clicks') }} as w
        on t.is_commission_model and t.attribution_reason = 'click'
       and w.network_id = t.network_id and w.click_id = t.click_id
    {%- else %}
    cross join (select null::timestamptz as clicked_at) as w
    {%- endif %}
),

held as (
    select
        s.*,
        nullif(concat_ws('; ',
            case when coalesce(s.is_fast_click, false)
                 then 'click less than {{ min_seconds }} s before the order' end,
            case when coalesce(s.is_click_burst, false)
                 then 'more than {{ max_clicks }} clicks for this customer in the hour up to the click' end
        ), '') as hold_reason
    from signals as s
)

select
    h.*,
    case when h.hold_reason is not null then r.decision end    as review_decision,
    case when h.hold_reason is not null then r.reviewed_at end as reviewed_at,
    case
        when h.hold_reason is null then null
        when r.decision is null then 'held'
        when r.decision = 'reject' then 'rejected'
        when r.review_date <= h.lock_date then null
        else 'approved'
    end                                                        as programme_state
from held as h
left join {{ ref('stg_cfg__reviews') }} as r
    on h.hold_reason is not null and r.partner_id = h.partner_id and r.order_id = h.order_id
