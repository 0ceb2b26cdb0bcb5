{#- Generic test: attribution credit sums to 1 per order and attribution model. `scope` as in macros/test_scoping.sql. -#}
{% test credit_sums_to_one(model, column_name, scope=none) %}
select partner_id, order_id, attribution_model, sum({{ column_name }}) as total_credit
from {{ scoped(model, scope) }}
group by partner_id, order_id, attribution_model
having sum({{ column_name }}) <> 1 and abs(sum({{ column_name }}) - 1) > 0.000000001
{% endtest %}
