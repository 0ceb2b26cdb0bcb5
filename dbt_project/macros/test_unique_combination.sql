{#- Generic test: the combination of columns is unique (nulls compare equal). `scope` as in
    macros/incremental/test_scoping.sql. -#}
{% test unique_combination(model, combination, scope=none) %}
select {{ combination | join(', ') }}, count(*) as n_rows
from {{ scoped(model, scope) }}
group by {{ combination | join(', ') }}
having count(*) > 1
{% endtest %}
