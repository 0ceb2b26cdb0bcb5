-- Attribution rows of every model per attributable order (§6), one row per (order, model, credited referrer), with
-- the money each row carries in the reporting currency. The rules live in the models this one reads, compiled into
-- one statement (all ephemeral):
--   int_attribution__click_credits      each model's click credit per referrer (last/first click, linear,
--                                       position_based, time_decay), rounded so every (order, model) sums to 1
--   int_attribution__credits            code beats click, else click credits, else organic
--   int_contract_periods                dated contracts cut into disjoint periods
--   int_attribution__commission_terms   the contract (or default) and rate in effect for each row
--   int_attribution__holds              §8.5 holds and reviews of the configured model's click-credited rows
--   int_attribution__programme          §8.1-2 tiers and caps per programme month
-- Here: cent allocation and the commission of the configured model (§6 Commission, §8): a commissioned row earns
-- its programme commission, a held or rejected row 0, a row approved after its lock date its held_rc.
--   attributed_revenue_rc, net_attributed_revenue_rc, refund_leakage_rc are allocated cumulatively in referrer
--   order (allocated_cents), so the rows of each (order, model) add up to the order's rounded amounts; a row
--   crediting the whole order takes them as they are. own_* are each row's amounts rounded on their own (§6 KPI
--   money). commission_rc is rounded to cents once per order and referrer, for the configured model only; the
--   commission state depends on the run date and is added in the mart.
{%- if var('attribution_model') not in attribution_models() %}
    {{ exceptions.raise_compiler_error(
        "attribution_model `" ~ var('attribution_model') ~ "` is unknown; use one of "
        ~ attribution_models() | join(', ')) }}
{%- endif %}
{{ config(materialized='incremental', incremental_strategy='append', pre_hook="{{ retire_changed_commissions() }}",
          post_hook=["{{ rerate_programme_months() }}", "{{ analyze_after_full_build() }}",
                     "{{ ensure_partial_index('adjusted', ['partner_id', 'order_id'],
                         \"programme_state = 'approved' or (clawback and is_commissioned)\") }}",
                     "{{ ensure_partial_index('months', ['partner_id', 'referrer_partner_id', 'order_date'],
                         'is_commission_model') }}"],
          indexes=[{'columns': ['partner_id', 'order_id']}]) }}
-- depends_on: {{ ref('int_orders__changed') }}
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
    ordered_at,
    order_date,
    lock_date,
    currency,
    fx_rate,
    is_new_customer,
    attribution_model = '{{ var("attribution_model") }}'                  as is_commission_model,
    case when referrer_partner_id is not null then contract_source end as contract_source,
    case when referrer_partner_id is not null then contract_type end   as contract_type,
    case when referrer_partner_id is not null then contract_effective_from end as contract_effective_from,
    case when referrer_partner_id is not null and attribution_model = '{{ var("attribution_model") }}' then programme_rate
         when referrer_partner_id is not null then rate_applied end    as rate_applied,
    case when referrer_partner_id is not null and contract_type = 'flat' then flat_amount end as flat_amount,
    case when cum_credit = 1 and prev_credit = 0 then revenue_rc
         else {{ allocated_cents('commissionable_amount * fx_rate') }} end                     as attributed_revenue_rc,
    case when cum_credit = 1 and prev_credit = 0 then net_revenue_rc
         else {{ allocated_cents('(commissionable_amount - refunded_amount) * fx_rate') }} end as net_attributed_revenue_rc,
    case when cum_credit = 1 and prev_credit = 0 then refund_leakage_rc
         else {{ allocated_cents('refunded_after_lock_amount * fx_rate') }} end                as refund_leakage_rc,
    {{ cents('credit * commissionable_amount * fx_rate') }}                       as own_revenue_rc,
    {{ cents('credit * (commissionable_amount - refunded_amount) * fx_rate') }}   as own_net_revenue_rc,
    {{ cents('credit * refunded_after_lock_amount * fx_rate') }}                  as own_refund_leakage_rc,
    case
        when attribution_model <> '{{ var("attribution_model") }}' then null::numeric
        when referrer_partner_id is null then 0::numeric
        else {{ programme_commission('p') }}
    end                                                                         as commission_rc,
    -- §8: the programme's view of the row (null on other models' and organic rows)
    coalesce(is_commissioned, false)                                            as is_commissioned,
    programme_state,
    hold_reason,
    held_rc,
    review_decision,
    reviewed_at,
    -- §8.1 the tier the row earned (its from_orders), null below the first tier or without tiers
    tier_from_orders,
    order_capped_rc,
    cap_per_order,
    cap_per_month,
    -- the programme's other inputs, kept so that a later run can re-rate the row's month without recomputing it
    case when referrer_partner_id is not null then tiers end                as tiers,
    case when referrer_partner_id is not null then base_rate end            as base_rate,
    case when referrer_partner_id is not null then new_customer_rate end    as new_customer_rate,
    coalesce(clawback and is_commissioned, false)                              as clawback,
    net_commissionable_amount,
    commissionable_amount,
    refunded_before_lock_amount
from {{ ref('int_attribution__programme') }} as p
