{#- Generic test: every row satisfies every rule (a name -> SQL boolean expression; null counts as broken). One scan
    of the table for all its row-level checks (not null, accepted values); a failing row names the rules it breaks.
    `scope` as in macros/incremental/test_scoping.sql. -#}
{% test row_rules(model, rules, scope=none) %}
with checked as (
    select
        concat_ws(', '{% for name, rule in rules.items() %}, case when ({{ rule }}) is not true then '{{ name }}' end{% endfor %})
            as failed_rules,
        *
    from {{ scoped(model, scope) }}
)

select * from checked where failed_rules <> ''
{% endtest %}
