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

{#- post_hook: a partial index over the few rows a later step picks out by a condition, created once per table: the
    late-event orders clawbacks start from, the approvals and clawback rows of attribution, the configured model's
    rows of a programme month (re-rating), the statement lines that are not an order's. With them those readers fetch
    the rows they need instead of scanning millions on every run, which at 1M orders was most of a one-order build.
    The index is named after the table's oid and `label`, so a full build's new table gets its own. -#}
{% macro ensure_partial_index(label, columns, where) -%}
    do $$ declare
        name text := left('{{ this.identifier }}', 40) || '_' || '{{ this }}'::regclass::oid || '_{{ label }}';
    begin
        if to_regclass(quote_ident('{{ this.schema }}') || '.' || quote_ident(name)) is null then
            execute format('create index %I on {{ this }} ({{ columns | join(', ') }}) where {{ where | replace("'", "''") }}', name);
        end if;
    end $$
{%- endmacro %}

{#- post_hook of the tables the quality gate checks in part (alliance/gate_scope.py): their exact row count, kept by
    difference in ops.table_row_counts (migration 0021) by statement triggers that count each INSERT's and DELETE's
    transition table. Created and seeded once per table (a full build's new table is counted once, when it is
    built); an incremental run's writes then keep the count, so the gate's whole-table row-count rule reads one row
    instead of counting millions. -#}
{% macro keep_row_count() -%}
    do $$ begin
        if not exists (select 1 from pg_trigger where tgrelid = '{{ this }}'::regclass
                       and tgname = 'alliance_row_count_insert') then
            create trigger alliance_row_count_insert after insert on {{ this }}
                referencing new table as inserted_rows for each statement execute function ops.keep_table_row_count();
            create trigger alliance_row_count_delete after delete on {{ this }}
                referencing old table as deleted_rows for each statement execute function ops.keep_table_row_count();
            create trigger alliance_row_count_truncate after truncate on {{ this }}
                for each statement execute function ops.keep_table_row_count();
            insert into ops.table_row_counts (table_oid, row_count)
            select '{{ this }}'::regclass, count(*) from {{ this }}
            on conflict (table_oid) do update set row_count = excluded.row_count, seeded_at = now();
        end if;
    end $$
{%- endmacro %}

{#- post_hook of partner_statement_lines: its per-section totals (referrer, destination, month, direction: line
    count, in-total count, sum of in-total amount_rc), kept by difference in ops.statement_line_totals (migration
    0022) by statement triggers over each INSERT's and DELETE's transition table. Created and seeded once per table,
    as keep_row_count; an incremental build's reconciliation with partner_balances
    (tests/assert_statement_lines_match_balances.sql) then reads the kept totals instead of summing every line. A
    line's section, in_totals and amount_rc are written once: an UPDATE changing them is refused. -#}
{% macro keep_statement_line_totals() -%}
    do $$ begin
        if not exists (select 1 from pg_trigger where tgrelid = '{{ this }}'::regclass
                       and tgname = 'alliance_line_totals_insert') then
            create trigger alliance_line_totals_insert after insert on {{ this }}
                referencing new table as inserted_rows for each statement
                execute function ops.keep_statement_line_totals();
            create trigger alliance_line_totals_delete after delete on {{ this }}
                referencing old table as deleted_rows for each statement
                execute function ops.keep_statement_line_totals();
            create trigger alliance_line_totals_truncate after truncate on {{ this }}
                for each statement execute function ops.keep_statement_line_totals();
            create trigger alliance_line_totals_frozen before update
                of referrer_partner_id, destination_partner_id, month, direction, in_totals, amount_rc on {{ this }}
                for each row when ((old.referrer_partner_id, old.destination_partner_id, old.month, old.direction,
                                    old.in_totals, old.amount_rc)
                                   is distinct from (new.referrer_partner_id, new.destination_partner_id, new.month,
                                                     new.direction, new.in_totals, new.amount_rc))
                execute function ops.refuse_statement_line_total_change();
            delete from ops.statement_line_totals where table_oid = '{{ this }}'::regclass;
            insert into ops.statement_line_totals (table_oid, referrer_partner_id, destination_partner_id, month,
                                                   direction, line_count, in_totals_count, lines_rc)
            select '{{ this }}'::regclass, referrer_partner_id, destination_partner_id, month, direction, count(*),
                   count(*) filter (where in_totals), coalesce(sum(amount_rc) filter (where in_totals), 0)
            from {{ this }}
            group by referrer_partner_id, destination_partner_id, month, direction;
        end if;
    end $$
{%- endmacro %}
