{#- ---------------------------------------------------------------- data tests of the large tables
    A full refresh tests every row. An incremental run tests only what it (re)wrote: a test with `scope:
    changed_orders` sees the rows of the orders in int_orders__changed. (The clicks' row rules are NOT NULL columns
    of int_network__clicks and fct_referrals, checked on every write.) Every other row is as it was in the last
    successful build, whose tests passed (a failed build forces the next one to be a full refresh,
    alliance/incremental.py). A scope is a set of whole keys (every row of a scoped order is in it), so per-key
    tests - unique, credit sums to one - stay exact. A scoped test depends on the model that defines its scope, so
    in `dbt build` it runs after this run has rebuilt that model (staging tests included, which otherwise would run
    first). -#}

{#- The relation a test reads, as `<relation> as <alias>`: `model`, restricted to the scope in an incremental run. The
    scope's keys drive the lookup (a lateral subquery per key, kept apart from the rest of the query by `offset 0`), so
    the model's key index is used instead of a scan of the whole table or of the raw payloads behind a staging view. -#}
{% macro scoped(model, scope=none, alias='scoped_rows') -%}
    {#- ref() is called unconditionally so that dbt records the dependency when it parses the test -#}
    {%- set changed_orders = ref('int_orders__changed') -%}
    {%- if scope not in (none, 'changed_orders') -%}
        {%- do exceptions.raise_compiler_error('unknown test scope ' ~ scope) -%}
    {%- endif -%}
    {%- if scope is none or flags.FULL_REFRESH -%}
        {{ model }} as {{ alias }}
    {%- else -%}
        (select in_scope.* from {{ changed_orders }} as scope_keys
         cross join lateral (
             select * from {{ model }} as m
             where m.partner_id = scope_keys.partner_id and m.order_id = scope_keys.order_id
             offset 0
         ) as in_scope) as {{ alias }}
    {%- endif -%}
{%- endmacro %}
