-- Orders with everything attribution and commission need: UTC order date, lock date, refunds (all and
-- on/before the lock date), FX rate of the order's date, effective cancellation, previous order, first order.
{{ config(materialized='incremental', incremental_strategy='append', pre_hook="{{ delete_changed_orders() }}",
          post_hook=["{{ analyze_after_full_build() }}",
                     "{{ ensure_partial_index('late', ['partner_id', 'order_id'],
                         'refunded_after_lock_amount > 0 or (is_cancelled and not is_cancelled_effective)') }}"],
          indexes=[{'columns': ['partner_id', 'order_id']}, {'columns': ['partner_id', 'customer_key']},
                   {'columns': ['_recomputed_at']}]) }}
-- depends_on: {{ ref('int_orders__changed') }}
with orders as (
    select u.* from {{ changed_orders_of(ref('int_orders__unioned'), 'u') }}
),

dated as (
    select
        o.*,
        {{ utc_date('o.ordered_at') }}                   as order_date,
        {{ lock_date(utc_date('o.ordered_at')) }}        as lock_date
    from orders as o
),

-- refunds summed per refunded order (all, and on or before its lock date)
refund_totals as (
    select
        d.partner_id,
        d.order_id,
        sum(r.refunded_amount)              as refunded_amount,
        -- a refund without a timestamp is treated as before the lock (the conservative side for payers' disputes)
        coalesce(sum(r.refunded_amount) filter (
            where r.refunded_at is null or {{ utc_date('r.refunded_at') }} <= d.lock_date
        ), 0)                               as refunded_before_lock_amount
    from dated as d
    {{ join_order_rows(ref('int_order_refunds__unioned'), 'r', 'd') }}
    group by d.partner_id, d.order_id
),

-- the FX rate of each (currency, UTC date) the orders have: the latest rate on or before that date (one lookup per
-- pair, not per order)
fx_days as (
    select
        f.currency,
        f.order_date,
        (
            select fx.rate_to_reporting
            from {{ ref('int_fx_rates') }} as fx
            where fx.currency = f.currency and fx.rate_date <= f.order_date
            order by fx.rate_date desc
            limit 1
        ) as fx_rate
    from (
        select distinct currency, order_date from dated where currency <> upper('{{ var("reporting_currency") }}')
    ) as f
),

flagged as (
    select
        d.*,
        coalesce(rt.refunded_amount, 0)                        as refunded_amount,
        coalesce(rt.refunded_before_lock_amount, 0)            as refunded_before_lock_amount,
        coalesce(rt.refunded_amount - rt.refunded_before_lock_amount, 0) as refunded_after_lock_amount,
        case
            when d.currency = upper('{{ var("reporting_currency") }}') then 1::numeric
            else fx.fx_rate
        end                                                   as fx_rate,
        -- §6.1: an order cancelled after its lock date counts as not cancelled
        {{ is_cancelled_effective('d.') }}                   as is_cancelled_effective
    from dated as d
    left join refund_totals as rt on rt.partner_id = d.partner_id and rt.order_id = d.order_id
    left join fx_days as fx on fx.currency = d.currency and fx.order_date = d.order_date
),

eligible as (
    select
        f.*,
        (not f.is_test and not f.is_cancelled_effective) as is_attributable
    from flagged as f
),

-- Each customer's history at the storefront: the orders computed here and, in an incremental run, the customer's
-- other orders as stored ({{ this }} without the orders being recomputed, which the pre_hook deleted), which
-- int_orders__changed left alone because nothing at or before them changed.
timeline as (
    select partner_id, order_id, customer_key, ordered_at, is_attributable, false as is_history
    from eligible
    where customer_key is not null
    {%- if is_incremental() %}
    union all
    select t.partner_id, t.order_id, t.customer_key, t.ordered_at, t.is_attributable, true
    from (select distinct partner_id, customer_key from eligible where customer_key is not null) as c
    inner join {{ this }} as t on t.partner_id = c.partner_id and t.customer_key = c.customer_key
    {%- endif %}
),

previous as (
    select
        partner_id,
        order_id,
        is_history,
        -- C's latest earlier (strictly) order at D that is neither cancelled nor test
        max(case when is_attributable then ordered_at end) over (
            partition by partner_id, customer_key
            order by ordered_at
            range between unbounded preceding and '1 microsecond'::interval preceding
        ) as previous_order_at
    from timeline
),

with_previous as (
    select e.*, p.previous_order_at
    from eligible as e
    left join previous as p on p.partner_id = e.partner_id and p.order_id = e.order_id and not p.is_history
)

select
    *,
    (is_attributable and customer_key is not null and previous_order_at is null) as is_new_customer,
    -- when this order's work rows were last (re)computed: the incremental marts replace orders newer than their
    -- snapshot (macros/incremental/mart_snapshots.sql)
    {{ dbt_run_at() }}                                                           as _recomputed_at
from with_previous
