{#- Incremental runs. The large intermediate models are incremental. Each run recomputes exactly the orders listed in
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
