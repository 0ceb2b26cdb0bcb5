-- §6.2 code beats click: per attributable order, the first code (discount codes in listed order, then the
-- landing ref) that belongs to a known partner other than the destination.
{{ config(materialized='incremental', incremental_strategy='append', pre_hook="{{ delete_changed_orders() }}",
          post_hook="{{ analyze_after_full_build() }}",
          indexes=[{'columns': ['partner_id', 'order_id']}]) }}
-- depends_on: {{ ref('int_orders__changed') }}
with candidates as (
    select
        o.partner_id,
        o.order_id,
        rc.partner_id as referrer_partner_id,
        c.raw_code    as referral_code,
        c.code_source,
        row_number() over (
            partition by o.partner_id, o.order_id
            order by c.source_rank, c.code_position
        )             as precedence
    from {{ changed_orders_of(ref('int_orders__enriched'), 'o') }}
    {{ join_order_rows(ref('int_order_code_candidates'), 'c', 'o') }}
    inner join {{ ref('stg_cfg__referral_codes') }} as rc
        on rc.code = c.code_normalized
    inner join {{ ref('stg_cfg__partners') }} as p
        on p.partner_id = rc.partner_id
    where o.is_attributable
      and rc.partner_id <> o.partner_id
)

select partner_id, order_id, referrer_partner_id, referral_code, code_source
from candidates
where precedence = 1
