{#- Small SQL helpers shared by the models; business rules stay in the models. -#}

{#- The UTC calendar date of a timestamptz, independent of the session time zone. -#}
{% macro utc_date(ts) -%}
    (({{ ts }}) at time zone 'UTC')::date
{%- endmacro %}

{#- Money rounded to cents, half away from zero (Postgres round(numeric, 2) does exactly that). -#}
{% macro cents(expr) -%}
    round(({{ expr }})::numeric, 2)
{%- endmacro %}

{#- The as_of_date var (YYYY-MM-DD) or, when empty, today's UTC date. -#}
{% macro as_of_date() -%}
    {%- set value = var('as_of_date', '') -%}
    {%- if value is none or (value | string | trim) == '' -%}
        ((now() at time zone 'UTC')::date)
    {%- else -%}
        ('{{ value | string | trim }}'::date)
    {%- endif -%}
{%- endmacro %}

{#- lookback_days as exact 24-hour days (an interval in hours, so no DST or calendar drift). -#}
{% macro lookback_interval() -%}
    make_interval(hours => 24 * {{ var('lookback_days') | int }})
{%- endmacro %}

{#- Lock date of an order date: last day of its UTC month plus lock_days. -#}
{% macro lock_date(order_date) -%}
    ((date_trunc('month', ({{ order_date }})::timestamp) + interval '1 month')::date - 1 + {{ var('lock_days') | int }})
{%- endmacro %}

{#- §6.1 effective cancellation: cancelled, unless the cancellation came after the order's lock date. `alias`
    ('o.' or '') names a row with is_cancelled, cancelled_at and ordered_at. int_orders__enriched and
    int_orders__changed must agree on it, hence one definition. -#}
{% macro is_cancelled_effective(alias='') -%}
    ({{ alias }}is_cancelled
     and not coalesce({{ utc_date(alias ~ 'cancelled_at') }} > {{ lock_date(utc_date(alias ~ 'ordered_at')) }}, false))
{%- endmacro %}

{#- The value of query parameter `name` in a URL; printable-ASCII percent-escapes decoded ('+' is a space; non-ASCII escapes
    are kept literally so a malformed URL can never fail the run); null when absent. -#}
{% macro url_query_param(url, name) -%}
    (
        select convert_from(
            string_agg(
                case when part[1] is not null then decode(substr(part[1], 2), 'hex')
                     else convert_to(part[2], 'UTF8') end,
                ''::bytea order by ord
            ),
            'UTF8'
        )
        from regexp_matches(
            replace(substring({{ url }} from '[?&]{{ name }}=([^&#]*)'), '+', ' '),
            '(%[2-7][0-9A-Fa-f])|([^%]+|%)', 'g'
        ) with ordinality as decoded(part, ord)
    )
{%- endmacro %}

{#- Cents of `credit x amount` allocated cumulatively over an order's credit rows: round(cumulative credit x amount)
    minus round(previous cumulative credit x amount). Each row differs from its own rounding by at most a cent and
    the rows of one (order, model) add up exactly to the order's rounded amount. Needs cum_credit and prev_credit. -#}
{% macro allocated_cents(amount) -%}
    (round((cum_credit * ({{ amount }}))::numeric, 2) - round((prev_credit * ({{ amount }}))::numeric, 2))
{%- endmacro %}

{#- §6: a commission is locked when the run's UTC date (as_of) is after its lock date, else pending. -#}
{% macro commission_state(lock_date) -%}
    (case when {{ as_of_date() }} > {{ lock_date }} then 'locked' else 'pending' end)
{%- endmacro %}

{#- ---------------------------------------------------------------- incremental runs
    The large intermediate models are incremental. Each run recomputes exactly the orders listed in
    int_orders__changed (orders whose raw row changed, and the orders of the same customer at the same storefront
    that such a change or a new click can reach) and leaves the rest as they are. A changed config, changed model code
    or a failed previous build makes alliance/run.py run `--full-refresh` instead. -#}

{#- This invocation's start, stamped on the rows an incremental model (re)writes. -#}
{% macro dbt_run_at() -%}
    '{{ run_started_at.isoformat() }}'::timestamptz
{%- endmacro %}

{#- The first value of a one-row query, as text, run when the node executes (compiled into the SQL as a literal, so
    the planner sees the actual watermark instead of a subquery it cannot estimate); `placeholder` while parsing. -#}
{% macro scalar_value(query, placeholder='-infinity') -%}
    {%- if execute -%}
        {%- do return(run_query(query).columns[0].values()[0]) -%}
    {%- else -%}
        {%- do return(placeholder) -%}
    {%- endif -%}
{%- endmacro %}

{#- Raw rows loaded since the newest one already processed, minus `incremental_overlap_minutes` (a load whose
    transaction was still open during the last run is picked up; re-reading a row is harmless). The watermark is read
    from {{ this }}'s `_loaded_at` index and inlined. -#}
{% macro loaded_since_last_run() -%}
    {%- if is_incremental() %}
    {%- set watermark = scalar_value(
        "select (coalesce(max(_loaded_at), '-infinity'::timestamptz) - make_interval(mins => "
        ~ (var('incremental_overlap_minutes') | int) ~ "))::text from " ~ this) %}
    where _loaded_at > '{{ watermark }}'::timestamptz
    {%- endif %}
{%- endmacro %}

{#- `relation as alias` in a full build; in an incremental run, only the rows of the orders in int_orders__changed,
    joined on relation's (partner_id, order_id) (the planner, knowing the changed set is small, looks them up). -#}
{% macro changed_orders_of(relation, alias) -%}
    {%- if not is_incremental() -%}
    {{ relation }} as {{ alias }}
    {%- else -%}
    {{ ref('int_orders__changed') }} as {{ alias }}_changed
    inner join {{ relation }} as {{ alias }}
        on {{ alias }}.partner_id = {{ alias }}_changed.partner_id and {{ alias }}.order_id = {{ alias }}_changed.order_id
    {%- endif -%}
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

{#- The attribution models of §6, side by side in fct_order_attribution. -#}
{% macro attribution_models() -%}
    {{ return(['last_click', 'first_click', 'linear', 'position_based', 'time_decay']) }}
{%- endmacro %}

{#- ---------------------------------------------------------------- incremental marts
    The published fact tables are incremental too. A publish renames the build schema to `analytics` and recycles
    the snapshot it retires from `analytics_prev` as the next build schema (alliance/publish.py), so a build starts
    from a complete, older copy of the marts. `ops.mart_snapshots` (keyed by the schema's oid, which survives the
    renames) says up to which work-table state that copy is: the newest `_recomputed_at` of int_orders__enriched
    and `_dbt_run_at` of int_network__clicks it contains (alliance/incremental.py writes it after a successful
    build). An incremental build replaces the rows of every order recomputed and adds every click landed since;
    with no state (a new schema) that is every order and click. A code or config change rebuilds everything
    (`--full-refresh`, the build schema dropped first). -#}

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

{#- Orders whose work rows were recomputed after this schema's snapshot (incremental runs). -#}
{% macro orders_recomputed_since_snapshot() -%}
    select partner_id, order_id from {{ ref('int_orders__enriched') }}
    where _recomputed_at > {{ mart_watermark('orders_through') }}
{%- endmacro %}

{#- pre_hook of the order-keyed marts: drop the rows of the orders recomputed since the snapshot. -#}
{% macro delete_orders_recomputed_since_snapshot() -%}
    {%- if is_incremental() -%}
    delete from {{ this }} as t using ({{ orders_recomputed_since_snapshot() }}) as c
    where t.partner_id = c.partner_id and t.order_id = c.order_id
    {%- else -%}
    select 1
    {%- endif -%}
{%- endmacro %}

{#- `relation as alias`, in an incremental run only the rows of the orders recomputed since the snapshot (joined on
    relation's (partner_id, order_id), as in changed_orders_of). -#}
{% macro recomputed_since_snapshot_of(relation, alias) -%}
    {%- if is_incremental() -%}
    ({{ orders_recomputed_since_snapshot() }}) as {{ alias }}_recomputed
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
    rows the run did not recompute move between pending and locked; rows without a state stay without one. On the
    same date nothing is scanned. -#}
{% macro refresh_commission_state() -%}
    {%- if is_incremental() %}
    update {{ this }} set commission_state = {{ commission_state('lock_date') }}
    where commission_state is not null and commission_state <> {{ commission_state('lock_date') }}
      and (select d.as_of_date from ops.mart_as_of_dates as d where d.table_oid = '{{ this }}'::regclass)
          is distinct from {{ as_of_date() }};
    {%- endif %}
    insert into ops.mart_as_of_dates (table_oid, as_of_date) values ('{{ this }}'::regclass, {{ as_of_date() }})
    on conflict (table_oid) do update set as_of_date = excluded.as_of_date
{%- endmacro %}

{#- post_hook: a unique index on `columns` with nulls not distinct (an organic row's referrer is null), created
    once per table. It makes PostgreSQL refuse a duplicate on every write (tested by `enforced_unique_key`, a
    catalog lookup) and serves the incremental delete of an order's rows. -#}
{% macro ensure_unique_key(columns) -%}
    do $$ begin
        if not exists (select 1 from pg_index where indrelid = '{{ this }}'::regclass and indisunique) then
            create unique index on {{ this }} ({{ columns | join(', ') }}) nulls not distinct;
        end if;
    end $$
{%- endmacro %}

{#- post_hook of the large work tables: planner statistics right after a full build, before the next model reads the
    table (autovacuum would analyze it a minute later; a plan made without statistics can take twice as long). An
    incremental run changes a small share of the rows and leaves the statistics to autovacuum. -#}
{% macro analyze_after_full_build() -%}
    {%- if is_incremental() -%}
    select 1
    {%- else -%}
    analyze {{ this }}
    {%- endif -%}
{%- endmacro %}
