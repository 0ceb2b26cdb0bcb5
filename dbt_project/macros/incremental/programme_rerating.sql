{#- §8 tiers and monthly caps reach across orders: an order that changes (a new one early in a month, a cancellation
    before the lock) moves every later order of its programme month (destination, referrer, UTC month). An
    incremental run recomputes attribution only for the orders in int_orders__changed; this post-hook of
    int_order_attribution then recomputes the programme columns of every month those orders touch (where their rows
    are now, and where they were: the retired rows), from the stored rows, and rewrites only the rows whose values
    moved. The orders re-rated that way (not themselves changed) are
      - retired like the changed ones (their old rows in int_order_attribution__retired), so the partner totals take
        back what they contributed before and add what they contribute now (attribution_recomputed_orders_of);
      - logged with this run's time in int_order_attribution__rerated, so the marts' snapshots pick them up
        (orders_recomputed_since_snapshot(with_rerated=true)); entries every snapshot has seen are pruned.
    A full build computes whole months in one statement and starts the log empty. -#}
{% macro rerate_programme_months() -%}
    {%- set log = rerated_orders(this) -%}
    {%- set retired = retired_commissions(this) -%}
    {%- set stored = ['rate_applied', 'tier_from_orders', 'order_capped_rc', 'commission_rc', 'held_rc'] -%}
    {%- if is_incremental() %}
    create table if not exists {{ log }} (partner_id text not null, order_id text not null, rerated_at timestamptz not null);
    drop table if exists pg_temp.programme_rerated;
    create temporary table programme_rerated as
    with touched_months as (
        select a.partner_id, a.referrer_partner_id, date_trunc('month', a.order_date::timestamp)::date as programme_month
        from {{ ref('int_orders__changed') }} as c
        inner join {{ this }} as a on a.partner_id = c.partner_id and a.order_id = c.order_id
        where a.is_commission_model and a.referrer_partner_id is not null
        union
        select r.partner_id, r.referrer_partner_id, date_trunc('month', r.order_date::timestamp)::date
        from {{ retired }} as r
    ),

    month_rows as (
        select
            a.partner_id, a.order_id, a.referrer_partner_id, a.is_commission_model, a.order_date, a.ordered_at,
            a.programme_state, a.tiers, a.contract_type, a.is_new_customer, a.new_customer_rate, a.base_rate,
            a.net_commissionable_amount, a.fx_rate, a.credit, a.flat_amount, a.cap_per_order, a.cap_per_month
        from touched_months as t
        inner join {{ this }} as a
            on a.partner_id = t.partner_id and a.referrer_partner_id = t.referrer_partner_id
           and a.order_date >= t.programme_month and a.order_date < t.programme_month + interval '1 month'
        where a.is_commission_model
    ),

    programme as (
        {{ programme_terms('month_rows') }}
    ),

    recomputed as (
        select p.partner_id, p.order_id, p.referrer_partner_id, {{ programme_columns('p') }}
        from programme as p
    )

    select
        n.*,
        not exists (
            select 1 from {{ ref('int_orders__changed') }} as c
            where c.partner_id = n.partner_id and c.order_id = n.order_id
        ) as is_rerated
    from recomputed as n
    inner join {{ this }} as a
        on a.partner_id = n.partner_id and a.order_id = n.order_id and a.referrer_partner_id = n.referrer_partner_id
       and a.is_commission_model
    where (a.{{ stored | join(', a.') }}) is distinct from (n.{{ stored | join(', n.') }});

    insert into {{ retired }}
    select a.* from {{ this }} as a
    where a.is_commission_model and a.referrer_partner_id is not null
      and (a.partner_id, a.order_id) in (select partner_id, order_id from programme_rerated where is_rerated);

    update {{ this }} as a set
        {%- for column in stored %}
        {{ column }} = r.{{ column }}{{ ',' if not loop.last }}
        {%- endfor %}
    from programme_rerated as r
    where a.partner_id = r.partner_id and a.order_id = r.order_id and a.referrer_partner_id = r.referrer_partner_id
      and a.is_commission_model;

    insert into {{ log }} (partner_id, order_id, rerated_at)
    select distinct partner_id, order_id, {{ dbt_run_at() }} from programme_rerated where is_rerated;
    delete from {{ log }}
    where rerated_at <= (select coalesce(min(s.orders_through), '-infinity') from ops.mart_snapshots as s
                         where s.schema_oid in (select oid from pg_namespace));
    drop table programme_rerated
    {%- else %}
    drop table if exists {{ log }};
    create table {{ log }} (partner_id text not null, order_id text not null, rerated_at timestamptz not null)
    {%- endif %}
{%- endmacro %}

{#- The re-rating log beside int_order_attribution (`attribution` is its relation). -#}
{% macro rerated_orders(attribution) -%}
    {{ attribution.incorporate(path={"identifier": attribution.identifier ~ "__rerated"}) }}
{%- endmacro %}

{#- changed_orders_of for int_order_attribution's consumers that add up its rows (the partner totals): the changed
    orders and the ones this run re-rated. -#}
{% macro attribution_recomputed_orders_of(relation, alias) -%}
    (
        select partner_id, order_id from {{ ref('int_orders__changed') }}
        union
        select partner_id, order_id from {{ rerated_orders(relation) }} where rerated_at = {{ dbt_run_at() }}
    ) as {{ alias }}_changed
    inner join {{ relation }} as {{ alias }}
        on {{ alias }}.partner_id = {{ alias }}_changed.partner_id and {{ alias }}.order_id = {{ alias }}_changed.order_id
{%- endmacro %}
