-- The hand-written reference: PRODUCT.md §6 last-click attribution in one SQL statement, straight from raw.*
-- (code beats click, case-insensitive codes of other known partners - discount codes in order, then the landing
-- `ref`; clicks of known partners other than the destination, same customer_key, within lookback_days*24h up to
-- the order, after the customer's previous purchase there; latest click wins, ties to the greatest click_id by
-- (length, text); test and cancelled-before-lock orders excluded). No FX or commission: attribution only.
create table bench_ref.last_click as
with orders as (
    select
        o.partner_id,
        o.order_id,
        o.customer_key,
        o.payload,
        (o.payload ->> 'created_at')::timestamptz as t,
        coalesce((o.payload ->> 'test')::boolean, false) as is_test,
        case
            when o.payload ->> 'cancelled_at' is not null
                then ((o.payload ->> 'cancelled_at')::timestamptz at time zone 'UTC')::date
                     <= (date_trunc('month', (o.payload ->> 'created_at')::timestamptz at time zone 'UTC')
                         + interval '1 month')::date - 1 + %(lock_days)s
            else coalesce(o.payload ->> 'financial_status', '') = 'voided'
        end as is_cancelled
    from raw.orders as o
),
attributable as (
    select
        *,
        max(t) filter (where not is_test and not is_cancelled) over (
            partition by partner_id, customer_key order by t
            range between unbounded preceding and '1 microsecond'::interval preceding
        ) as previous_t
    from orders
),
codes as (
    select distinct on (a.partner_id, a.order_id) a.partner_id, a.order_id, rc.partner_id as referrer
    from attributable as a
    cross join lateral (
        select upper(trim(d ->> 'code')) as code, 1 as rank, n
        from jsonb_array_elements(coalesce(a.payload -> 'discount_codes', '[]'::jsonb)) with ordinality as x(d, n)
        union all
        select upper(trim(substring(a.payload ->> 'landing_site' from '[?&]ref=([^&#]*)'))), 2, 1
    ) as c
    join raw.cfg_referral_codes as rc on rc.code = c.code
    where not a.is_test and not a.is_cancelled and rc.partner_id <> a.partner_id
    order by a.partner_id, a.order_id, c.rank, c.n
),
clicks as (
    select distinct on (a.partner_id, a.order_id) a.partner_id, a.order_id, k.payload ->> 'ReferrerPartnerId' as referrer
    from attributable as a
    join raw.clicks as k
      on k.customer_key = a.customer_key and lower(trim(k.payload ->> 'DestinationPartnerId')) = a.partner_id
    join raw.cfg_partners as p on p.partner_id = lower(trim(k.payload ->> 'ReferrerPartnerId'))
    where not a.is_test and not a.is_cancelled
      and p.partner_id <> a.partner_id
      and k.clicked_at between a.t - make_interval(hours => 24 * %(lookback_days)s) and a.t
      and (a.previous_t is null or k.clicked_at > a.previous_t)
    order by a.partner_id, a.order_id, k.clicked_at desc, length(k.click_id) desc, k.click_id desc
)
select
    a.partner_id,
    a.order_id,
    coalesce(c.referrer, k.referrer) as referrer_partner_id,
    case when c.referrer is not null then 'code' when k.referrer is not null then 'click' else 'organic' end
        as attribution_reason
from attributable as a
left join codes as c on c.partner_id = a.partner_id and c.order_id = a.order_id
left join clicks as k on k.partner_id = a.partner_id and k.order_id = a.order_id
where not a.is_test and not a.is_cancelled
