{#- Generic test: the combination of columns is unique (nulls compare equal). -#}
{% test unique_combination(model, combination) %}
select {{ combination | join(', ') }}, count(*) as n_rows
from {{ model }}
group by {{ combination | join(', ') }}
having count(*) > 1
{% endtest %}
