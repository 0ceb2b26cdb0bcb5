{#- ---------------------------------------------------------------- data tests of the large tables
    A full refresh tests every row. An incremental run tests only what it (re)wrote: a test with `scope:
    changed_orders` sees the rows of the orders in int_orders__changed, `scope: changed_clicks` the clicks this
    invocation wrote to int_network__clicks. Every other row is as it was in the last successful build, whose tests
    passed (a failed build forces the next one to be a full refresh, alliance/incremental.py). A scope is a set of
    whole keys (every row of a scoped order or click is in it), so per-key tests - unique, credit sums to one - stay
    exact. A scoped test depends on the model that defines its scope, so in `dbt build` it runs after this run has
    rebuilt that model (staging tests included, which otherwise would run first). -#}

{#- The relation a test reads: `model`, restricted to the scope in an incremental run. -#}
{% macro scoped(model, scope=none) -%}
    {%- if scope is none -%}
        {{ model }}
    {%- else -%}
        {%- set condition = test_scope_condition(scope) -%}
        {%- if condition -%}
            (select * from {{ model }} where {{ condition }}) as scoped_rows
        {%- else -%}
            {{ model }}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{#- `and <condition>` or nothing (singular tests; `alias` prefixes the key columns). -#}
{% macro and_in_test_scope(scope, alias='') -%}
    {%- set condition = test_scope_condition(scope, alias) -%}
    {%- if condition %} and {{ condition }}{% endif -%}
{%- endmacro %}

{#- The SQL condition of a scope on columns prefixed by `alias`, or none when every row is tested (a full refresh). -#}
{% macro test_scope_condition(scope, alias='') -%}
    {%- if scope == 'changed_orders' -%}
        {%- set keys = ref('int_orders__changed') -%}
    {%- elif scope == 'changed_clicks' -%}
        {%- set clicks = ref('int_network__clicks') -%}
    {%- else -%}
        {%- do exceptions.raise_compiler_error('unknown test scope ' ~ scope) -%}
    {%- endif -%}
    {%- if flags.FULL_REFRESH -%}
        {%- do return(none) -%}
    {%- elif scope == 'changed_orders' -%}
        {%- do return('(' ~ alias ~ 'partner_id, ' ~ alias ~ 'order_id) in (select c.partner_id, c.order_id from '
                      ~ keys ~ ' as c)') -%}
    {%- else -%}
        {%- do return('(' ~ alias ~ 'network_id, ' ~ alias ~ 'click_id) in (select k.network_id, k.click_id from '
                      ~ clicks ~ ' as k where k._dbt_run_at = ' ~ dbt_run_at() ~ ')') -%}
    {%- endif -%}
{%- endmacro %}
