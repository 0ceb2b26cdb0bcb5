-- Every referral-code candidate an order carries, in precedence order (§6.2): discount codes in their
-- listed order first, then the landing URL's `ref`. Codes are compared upper(trim()), i.e. case-insensitively.
-- A view: int_order_code_attribution reads it only for the orders a run recomputes.
{{ config(materialized='view') }}
{%- set discount_models = ['stg_shopify__order_discount_codes', 'stg_woocommerce__order_discount_codes'] %}

with discount_codes as (
    {% for model_name in discount_models %}
    select partner_id, order_id, code_position, discount_code as raw_code, code_normalized
    from {{ ref(model_name) }}
    {% if not loop.last %}union all{% endif %}
    {% endfor %}
),

landing_refs as (
    select partner_id, order_id, landing_ref as raw_code, upper(trim(landing_ref)) as code_normalized
    from {{ ref('int_orders__unioned') }}
    where landing_ref is not null
)

select partner_id, order_id, 1 as source_rank, 'discount_code'::text as code_source, code_position,
       raw_code, code_normalized
from discount_codes
union all
select partner_id, order_id, 2 as source_rank, 'landing_ref'::text as code_source, 1 as code_position,
       raw_code, code_normalized
from landing_refs
