{#- Incremental marts. The published fact tables are incremental too. A publish renames the build schema to
    `analytics` and recycles the snapshot it retires from `analytics_prev` as the next build schema
    (alliance/publish.py), so a build starts from a complete, older copy of the marts. `ops.mart_snapshots` (keyed by
    the schema's oid, which survives the renames) says up to which work-table state that copy is: the newest
    `_recomputed_at` of int_orders__enriched and `_dbt_run_at` of int_network__clicks it contains
    (alliance/incremental.py writes it after a successful build). An incremental build replaces the rows of every
    order recomputed and adds every click landed since; with no state (a new schema) that is every order and click. A
    code or config change rebuilds everything (`--full-refresh`, the build schema dropped first). -#}

{#- The snapshot's watermark `column` (orders_through | clicks_through), or -infinity when it has none, inlined as a
    literal (ops.mart_snapshots changes only after a build, alliance/incremental.py). -#}
{% macro mart_watermark(column) -%}
    {%- set snapshots = adapter.get_relation(database=target.database, schema='ops', identifier='mart_snapshots')
        if execute else none -%}
    {%- set value = '-infinity' if snapshots is none else scalar_value(
        "select coalesce((select s." ~ column ~ " from ops.mart_snapshots as s where s.schema_oid = "
        ~ "(select oid from pg_namespace where nspname = '" ~ this.schema ~ "')), '-infinity'::timestamptz)::text") -%}
    '{{ value }}'::timestamptz
{%- endmacro %}

{#- Orders whose work rows were recomputed after this schema's snapshot (incremental runs); `with_rerated`: also the
    orders whose programme columns a later month change re-rated (rerate_programme_months), for the marts built from
    int_order_attribution. -#}
{% macro orders_recomputed_since_snapshot(with_rerated=false) -%}
    select partner_id, order_id from {{ ref('int_orders__enriched') }}
    where _recomputed_at > {{ mart_watermark('orders_through') }}
    {%- if with_rerated %}
    union
    select partner_id, order_id from {{ rerated_orders(ref('int_order_attribution')) }}
    where rerated_at > {{ mart_watermark('orders_through') }}
    {%- endif %}
{%- endmacro %}

{#- pre_hook of the order-keyed marts: drop the rows of the orders recomputed since the snapshot. -#}
{% macro delete_orders_recomputed_since_snapshot(with_rerated=false) -%}
    {%- if is_incremental() -%}
    delete from {{ this }} as t using ({{ orders_recomputed_since_snapshot(with_rerated) }}) as c
    where t.partner_id = c.partner_id and t.order_id = c.order_id
    {%- else -%}
    select 1
    {%- endif -%}
{%- endmacro %}

{#- `relation as alias`, in an incremental run only the rows of the orders recomputed since the snapshot (joined on
    relation's (partner_id, order_id), as in changed_orders_of). -#}
{% macro recomputed_since_snapshot_of(relation, alias, with_rerated=false) -%}
    {%- if is_incremental() -%}
    ({{ orders_recomputed_since_snapshot(with_rerated) }}) as {{ alias }}_recomputed
    inner join {{ relation }} as {{ alias }}
        on {{ alias }}.partner_id = {{ alias }}_recomputed.partner_id
       and {{ alias }}.order_id = {{ alias }}_recomputed.order_id
    {%- else -%}
    {{ relation }} as {{ alias }}
    {%- endif -%}
{%- endmacro %}

{#- pre_hook of fct_referrals: drop the clicks about to be added again (none, unless a run is repeated). -#}
{% macro delete_clicks_landed_since_snapshot() -%}
    {%- if is_incremental() -%}
    delete from {{ this }} as t using {{ ref('int_network__clicks') }} as k
    where k._dbt_run_at > {{ mart_watermark('clicks_through') }}
      and t.network_id = k.network_id and t.click_id = k.click_id
    {%- else -%}
    select 1
    {%- endif -%}
{%- endmacro %}

{#- post_hook of fct_order_attribution: commission_state depends on the run date (as_of_date), so when that date
    differs from the one the table was last brought up to (ops.mart_as_of_dates, written in the same transaction),
    rows the run did not recompute move between pending and locked; rows without a state, and §8 held, rejected and
    approved rows, stay as they are. On the
    same date nothing is scanned. -#}
{% macro refresh_commission_state() -%}
    {%- if is_incremental() %}
    update {{ this }} set commission_state = {{ commission_state('lock_date') }}
    where commission_state in ('pending', 'locked') and commission_state <> {{ commission_state('lock_date') }}
      and (select d.as_of_date from ops.mart_as_of_dates as d where d.table_oid = '{{ this }}'::regclass)
          is distinct from {{ as_of_date() }};
    {%- endif %}
    insert into ops.mart_as_of_dates (table_oid, as_of_date) values ('{{ this }}'::regclass, {{ as_of_date() }})
    on conflict (table_oid) do update set as_of_date = excluded.as_of_date
{%- endmacro %}
