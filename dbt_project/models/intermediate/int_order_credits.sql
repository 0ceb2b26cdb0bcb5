-- Credit rows of the configured attribution model per attributable order: code (credit 1), else the model's
-- click credit, else organic (referrer null, credit 1). Test and cancelled orders get no rows (§6.1).
{%- set model_name = var('attribution_model') %}
{%- if model_name != 'last_click' %}
    {{ exceptions.raise_compiler_error(
        "attribution_model `" ~ model_name ~ "` is not implemented in dbt_project yet; only last_click is") }}
{%- endif %}

select
    o.partner_id,
    o.order_id,
    '{{ model_name }}'::text                                              as attribution_model,
    coalesce(code.referrer_partner_id, click.referrer_partner_id)         as referrer_partner_id,
    case
        when code.referrer_partner_id is not null then 'code'
        when click.referrer_partner_id is not null then 'click'
        else 'organic'
    end                                                                   as attribution_reason,
    1::numeric                                                            as credit,
    case when code.referrer_partner_id is null then click.network_id end as network_id,
    case when code.referrer_partner_id is null then click.click_id end   as click_id,
    code.referral_code,
    code.code_source
from {{ ref('int_orders__enriched') }} as o
left join {{ ref('int_order_code_attribution') }} as code
    on code.partner_id = o.partner_id and code.order_id = o.order_id
left join {{ ref('int_order_last_click') }} as click
    on click.partner_id = o.partner_id and click.order_id = o.order_id
where o.is_attributable
