-- Attribution rows of every model with the contract in effect and, for the configured model only, the commission
-- (§6 Commission) at full precision, rounded to cents once per order and referrer. Revenue columns are allocated
-- cumulatively so each (order, model) reconciles to the order's rounded amounts. The commission state depends on
-- the run date and is added in the mart.
{{ config(materialized='incremental', incremental_strategy='append', pre_hook="{{ delete_changed_orders() }}",
          indexes=[{'columns': ['partner_id', 'order_id']}]) }}
-- depends_on: {{ ref('int_orders__changed') }}
with credits as (
    select
        *,
        sum(credit) over (
            partition by partner_id, order_id, attribution_model order by row_position
            rows between unbounded preceding and current row
        ) as cum_credit
    from {{ ref('int_order_credits') }} as c
    where true {{ only_changed_orders('c.') }}
),

orders as (
    select * from {{ ref('int_orders__enriched') }}
),

contracted as (
    select
        c.*,
        c.cum_credit - c.credit as prev_credit,
        o.order_date,
        o.lock_date,
        o.currency,
        o.fx_rate,
        o.is_new_customer,
        o.commissionable_amount,
        o.refunded_amount,
        o.refunded_before_lock_amount,
        o.refunded_after_lock_amount,
        greatest(0, o.commissionable_amount - o.refunded_before_lock_amount) as net_commissionable_amount,
        dated.contract_type    as dated_contract_type,
        dated.rate             as dated_rate,
        dated.new_customer_rate as dated_new_customer_rate,
        dated.amount           as dated_amount,
        dated.effective_from   as contract_effective_from,
        p.commission_type              as default_type,
        p.commission_rate              as default_rate,
        p.commission_new_customer_rate as default_new_customer_rate,
        p.commission_amount            as default_amount
    from credits as c
    inner join orders as o on o.partner_id = c.partner_id and o.order_id = c.order_id
    left join {{ ref('stg_cfg__partners') }} as p on p.partner_id = c.partner_id
    left join lateral (
        select k.*
        from {{ ref('stg_cfg__contracts') }} as k
        where k.destination_partner_id = c.partner_id
          and k.referrer_partner_id = c.referrer_partner_id
          and (k.effective_from is null or k.effective_from <= o.order_date)
          and (k.effective_to is null or o.order_date < k.effective_to)
        order by k.effective_from desc nulls last
        limit 1
    ) as dated on true
),

terms as (
    select
        *,
        case when dated_contract_type is not null then 'contract' else 'default' end as contract_source,
        coalesce(dated_contract_type, default_type) as contract_type,
        case when dated_contract_type is not null then dated_rate else default_rate end as base_rate,
        case when dated_contract_type is not null then dated_new_customer_rate else default_new_customer_rate end
            as new_customer_rate,
        case when dated_contract_type is not null then dated_amount else default_amount end as flat_amount
    from contracted
),

computed as (
    select
        *,
        case
            when contract_type = 'percent' and is_new_customer and new_customer_rate is not null then new_customer_rate
            when contract_type = 'percent' then base_rate
        end as rate_applied
    from terms
)

select
    partner_id,
    order_id,
    attribution_model,
    referrer_partner_id,
    attribution_reason,
    credit,
    row_position,
    network_id,
    click_id,
    referral_code,
    order_date,
    lock_date,
    currency,
    fx_rate,
    is_new_customer,
    attribution_model = '{{ var("attribution_model") }}'                  as is_commission_model,
    case when referrer_partner_id is not null then contract_source end as contract_source,
    case when referrer_partner_id is not null then contract_type end   as contract_type,
    case when referrer_partner_id is not null then contract_effective_from end as contract_effective_from,
    case when referrer_partner_id is not null then rate_applied end    as rate_applied,
    case when referrer_partner_id is not null and contract_type = 'flat' then flat_amount end as flat_amount,
    {{ allocated_cents('commissionable_amount * fx_rate') }}                      as attributed_revenue_rc,
    {{ allocated_cents('(commissionable_amount - refunded_amount) * fx_rate') }}  as net_attributed_revenue_rc,
    {{ allocated_cents('refunded_amount * fx_rate') }}                            as attributed_refunded_rc,
    {{ allocated_cents('refunded_after_lock_amount * fx_rate') }}                 as refund_leakage_rc,
    case
        when attribution_model <> '{{ var("attribution_model") }}' then null::numeric
        when referrer_partner_id is null then 0::numeric
        when contract_type = 'percent'
            then {{ cents('rate_applied * net_commissionable_amount * fx_rate * credit') }}
        when contract_type = 'flat'
            then case when net_commissionable_amount <= 0 then 0::numeric else {{ cents('flat_amount * credit') }} end
    end                                                                         as commission_rc
from computed
