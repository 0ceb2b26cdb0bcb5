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
    int_orders__changed (orders whose raw row changed, every order of the same customer at the same storefront, and
    orders a new click could be eligible for) and leaves the rest as they are. A changed config, changed model code
    or a failed previous build makes alliance/run.py run `--full-refresh` instead. -#}

{#- This invocation's start, stamped on the rows an incremental model (re)writes. -#}
{% macro dbt_run_at() -%}
    '{{ run_started_at.isoformat() }}'::timestamptz
{%- endmacro %}

{#- Raw rows loaded since the newest one already processed, minus `incremental_overlap_minutes` (a load whose
    transaction was still open during the last run is picked up; re-reading a row is harmless). -#}
{% macro loaded_since_last_run() -%}
    {%- if is_incremental() %}
    where _loaded_at > (select coalesce(max(_loaded_at), '-infinity'::timestamptz) from {{ this }})
                       - make_interval(mins => {{ var('incremental_overlap_minutes') | int }})
    {%- endif %}
{%- endmacro %}

{#- In an incremental run, only the orders of int_orders__changed (`alias` is the order table's alias + '.'). -#}
{% macro only_changed_orders(alias='') -%}
    {%- if is_incremental() %}
    and ({{ alias }}partner_id, {{ alias }}order_id) in (select partner_id, order_id from {{ ref('int_orders__changed') }})
    {%- endif %}
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
