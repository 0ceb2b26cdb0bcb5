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

{#- pre_hook of partner_statement_lines: drop the lines this run writes again: those of the orders recomputed (or
    re-rated) since the snapshot, found by (destination, order), and every adjustment line (clawback, manual,
    approval: commission_adjustments is rebuilt whole each run, and holds few rows). -#}
{% macro delete_statement_lines_to_rewrite() -%}
    {%- if is_incremental() -%}
    delete from {{ this }} as t where t.line_kind not in ('order', 'held', 'rejected');
    delete from {{ this }} as t using ({{ orders_recomputed_since_snapshot(with_rerated=true) }}) as c
    where t.destination_partner_id = c.partner_id and t.order_id = c.order_id
      and t.line_kind in ('order', 'held', 'rejected')
    {%- else -%}
    select 1
    {%- endif -%}
{%- endmacro %}

{#- post_hook of fct_order_attribution and partner_statement_lines: the commission state (`column`) depends on the
    run date (as_of_date), so when that date differs from the one the table was last brought up to
    (ops.mart_as_of_dates, written in the same transaction), rows the run did not recompute move between pending and
    locked at `lock_date` (a column or an expression of the row); rows without a state, and §8 held, rejected and
    approved rows, stay as they are. On the same date nothing is scanned. -#}
{% macro refresh_commission_state(column='commission_state', lock_date='lock_date') -%}
    {%- if is_incremental() %}
    update {{ this }} set {{ column }} = {{ commission_state(lock_date) }}
    where {{ column }} in ('pending', 'locked') and {{ column }} <> {{ commission_state(lock_date) }}
      and (select d.as_of_date from ops.mart_as_of_dates as d where d.table_oid = '{{ this }}'::regclass)
          is distinct from {{ as_of_date() }};
    {%- endif %}
    insert into ops.mart_as_of_dates (table_oid, as_of_date) values ('{{ this }}'::regclass, {{ as_of_date() }})
    on conflict (table_oid) do update set as_of_date = excluded.as_of_date
{%- endmacro %}
