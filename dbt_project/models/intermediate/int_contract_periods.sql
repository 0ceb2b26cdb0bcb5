-- §2 dated contracts as disjoint periods: the contracts of each (destination, referrer) cut into date ranges
-- [starts, ends), each with the contract in effect there (the latest effective_from wins); a range no contract
-- covers has no row, so an order dated there is paid at the destination's default commission.
-- Ephemeral: compiled into int_order_attribution's statement (a handful of config rows).
{{ config(materialized='ephemeral') }}
with bounds as (
    select distinct k.destination_partner_id, k.referrer_partner_id, b.starts
    from {{ ref('stg_cfg__contracts') }} as k
    cross join lateral (values ('-infinity'::date), (k.effective_from), (k.effective_to)) as b (starts)
    where b.starts is not null
),

ranges as (
    select
        b.destination_partner_id,
        b.referrer_partner_id,
        b.starts,
        coalesce(lead(b.starts) over (
            partition by b.destination_partner_id, b.referrer_partner_id order by b.starts
        ), 'infinity'::date) as ends
    from bounds as b
)

select r.destination_partner_id, r.referrer_partner_id, r.starts, r.ends, k.*
from ranges as r
cross join lateral (
    select k.contract_type, k.rate, k.new_customer_rate, k.amount, k.effective_from,
           k.tiers, k.cap_per_order, k.cap_per_month, k.clawback
    from {{ ref('stg_cfg__contracts') }} as k
    where k.destination_partner_id = r.destination_partner_id
      and k.referrer_partner_id = r.referrer_partner_id
      and (k.effective_from is null or k.effective_from <= r.starts)
      and (k.effective_to is null or r.starts < k.effective_to)
    order by k.effective_from desc nulls last
    limit 1
) as k
