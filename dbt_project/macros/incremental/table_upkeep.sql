{#- post_hooks that keep the large tables fast and honest. -#}

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
