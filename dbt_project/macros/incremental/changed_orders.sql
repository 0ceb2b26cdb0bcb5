{#- Incremental work tables: a run recomputes exactly the orders in int_orders__changed. -#}

{#- `relation as alias` in a full build; in an incremental run, only the rows of the orders in int_orders__changed,
    joined on relation's (partner_id, order_id) (the planner, knowing the changed set is small, looks them up).
    `incremental` defaults to is_incremental(); an ephemeral model passes is_incremental_for(<its consumer>). -#}
{% macro changed_orders_of(relation, alias, incremental=none) -%}
    {%- if not (is_incremental() if incremental is none else incremental) -%}
    {{ relation }} as {{ alias }}
    {%- else -%}
    {{ ref('int_orders__changed') }} as {{ alias }}_changed
    inner join {{ relation }} as {{ alias }}
        on {{ alias }}.partner_id = {{ alias }}_changed.partner_id and {{ alias }}.order_id = {{ alias }}_changed.order_id
    {%- endif -%}
{%- endmacro %}

{#- Inside an ephemeral model: whether the incremental model `consumer` (its name) that the ephemeral one is compiled
    into builds incrementally this run, as is_incremental() says inside it (dbt compiles an ephemeral model in its
    own context, where is_incremental() is always false). -#}
{% macro is_incremental_for(consumer) -%}
    {%- if not execute -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set relation = adapter.get_relation(database=this.database, schema=this.schema, identifier=consumer) -%}
    {{ return(relation is not none and relation.type == 'table' and not should_full_refresh()) }}
{%- endmacro %}

{#- `<kind> join relation as alias` on the order of `outer` (an alias). In an incremental run, for views over raw
    payloads (set-returning JSON functions): a lateral subquery per order, kept apart by `offset 0`, since
    PostgreSQL would otherwise parse every payload (or scan the whole table) and match afterwards; a full build joins
    them as a whole. -#}
{% macro join_order_rows(relation, alias, outer, kind='inner') -%}
    {%- if is_incremental() %}
    {{ kind }} join lateral (
        select * from {{ relation }} as {{ alias }}_rows
        where {{ alias }}_rows.partner_id = {{ outer }}.partner_id and {{ alias }}_rows.order_id = {{ outer }}.order_id
        offset 0
    ) as {{ alias }} on true
    {%- else %}
    {{ kind }} join {{ relation }} as {{ alias }}
        on {{ alias }}.partner_id = {{ outer }}.partner_id and {{ alias }}.order_id = {{ outer }}.order_id
    {%- endif -%}
{%- endmacro %}

{#- pre_hook of the order-keyed incremental models: drop the rows of the orders this run recomputes. -#}
{% macro delete_changed_orders() -%}
    {%- if is_incremental() -%}
    delete from {{ this }} as t using {{ ref('int_orders__changed') }} as c
    where t.partner_id = c.partner_id and t.order_id = c.order_id
    {%- else -%}
    select 1
    {%- endif -%}
{%- endmacro %}

{#- pre_hook of int_order_attribution: drop the rows of the orders this run recomputes, keeping their configured-model
    credited rows in `int_order_attribution__retired` (this run's only), from which the partner totals take back
    what those orders contributed before (int_partner_daily_totals, int_partner_monthly_totals). A full refresh drops
    that table: the totals are then summed from scratch. -#}
{% macro retire_changed_commissions() -%}
    {%- if is_incremental() -%}
    create table if not exists {{ retired_commissions(this) }} as select * from {{ this }} with no data;
    truncate {{ retired_commissions(this) }};
    with gone as (
        delete from {{ this }} as t using {{ ref('int_orders__changed') }} as c
        where t.partner_id = c.partner_id and t.order_id = c.order_id
        returning t.*
    )
    insert into {{ retired_commissions(this) }}
    select * from gone where is_commission_model and referrer_partner_id is not null
    {%- else -%}
    drop table if exists {{ retired_commissions(this) }}
    {%- endif -%}
{%- endmacro %}

{#- The table retire_changed_commissions() fills, beside int_order_attribution (`attribution` is its relation). -#}
{% macro retired_commissions(attribution) -%}
    {{ attribution.incorporate(path={"identifier": attribution.identifier ~ "__retired"}) }}
{%- endmacro %}
