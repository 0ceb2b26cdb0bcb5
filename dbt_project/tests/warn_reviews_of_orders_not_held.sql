-- §8.5 a review of an order that has no held row (never held, code-credited, organic, cancelled) or of an order
-- alliance does not know is ignored: the build goes on and the run reports it as a warning naming the reviews line,
-- the storefront and the order, so the partner manager can correct the reviews file.
{{ config(severity='warn') }}
select
    r.line,
    r.partner_id,
    r.order_id,
    case when o.order_id is null then 'unknown order' else 'order not held' end as why_ignored
from {{ ref('stg_cfg__reviews') }} as r
left join {{ ref('fct_orders') }} as o on o.partner_id = r.partner_id and o.order_id = r.order_id
where not exists (
    select 1 from {{ ref('fct_order_attribution') }} as a
    where a.partner_id = r.partner_id and a.order_id = r.order_id and a.hold_reason is not null
      and a.is_commission_model
)
