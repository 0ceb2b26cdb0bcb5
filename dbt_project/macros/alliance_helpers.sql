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

{#- The attribution models of §6, side by side in fct_order_attribution. -#}
{% macro attribution_models() -%}
    {{ return(['last_click', 'first_click', 'linear', 'position_based', 'time_decay']) }}
{%- endmacro %}

{#- §6: the metrics an objective may name - the additive partner_kpis_daily columns (alliance/config.py checks the
    config against the same list, OBJECTIVE_METRICS). objective_progress and objective_pace_daily sum them. -#}
{% macro objective_metrics() -%}
    {{ return(['clicks_sent', 'referred_orders', 'attributed_revenue_rc', 'net_attributed_revenue_rc',
               'commission_earned_rc', 'commission_owed_rc']) }}
{%- endmacro %}
