-- 0022: the per-section totals of partner_statement_lines, kept by difference as its lines are written, so that an
-- incremental build's reconciliation of statements with partner_balances (dbt test
-- assert_statement_lines_match_balances) reads a few hundred kept totals instead of summing millions of lines.
--
-- Per table (by oid, which survives the schema swaps of a publish) and statement section (referrer, destination,
-- month, direction): how many lines it has, how many are in the totals, and the sum of those lines' amount_rc. The
-- dbt post-hook `keep_statement_line_totals` (dbt_project/macros/incremental/table_upkeep.sql) creates the table's
-- triggers and seeds its totals in one statement; from then on every INSERT, DELETE and TRUNCATE adjusts them in the
-- writing transaction. The model never updates a line's amount, section or in_totals after writing it (only its
-- state, which no total depends on).
create schema if not exists ops;

create table if not exists ops.statement_line_totals (
    table_oid              oid not null,
    referrer_partner_id    text,
    destination_partner_id text,
    month                  date,
    direction              text,
    line_count             bigint not null,
    in_totals_count        bigint not null,
    lines_rc               numeric not null,
    constraint statement_line_totals_section unique nulls not distinct
        (table_oid, referrer_partner_id, destination_partner_id, month, direction)
);
grant select, insert, update, delete on ops.statement_line_totals to alliance_transformer;

create or replace function ops.keep_statement_line_totals() returns trigger
    language plpgsql set search_path = pg_catalog, pg_temp
as $$
begin
    if tg_op = 'TRUNCATE' then
        delete from ops.statement_line_totals where table_oid = tg_relid;
        return null;
    end if;
    -- the statement's transition table (inserted_rows or deleted_rows, as the triggers name them), added or taken off
    execute format($sql$
        insert into ops.statement_line_totals as t (table_oid, referrer_partner_id, destination_partner_id, month,
                                                    direction, line_count, in_totals_count, lines_rc)
        select $1, referrer_partner_id, destination_partner_id, month, direction, $2 * count(*),
               $2 * count(*) filter (where in_totals), $2 * coalesce(sum(amount_rc) filter (where in_totals), 0)
        from %I
        group by referrer_partner_id, destination_partner_id, month, direction
        on conflict on constraint statement_line_totals_section do update
            set line_count = t.line_count + excluded.line_count,
                in_totals_count = t.in_totals_count + excluded.in_totals_count,
                lines_rc = t.lines_rc + excluded.lines_rc
    $sql$, case tg_op when 'INSERT' then 'inserted_rows' else 'deleted_rows' end)
    using tg_relid, case tg_op when 'INSERT' then 1 else -1 end;
    if tg_op = 'DELETE' then
        delete from ops.statement_line_totals where table_oid = tg_relid and line_count = 0;
    end if;
    return null;
end
$$;
revoke all on function ops.keep_statement_line_totals() from public;
grant execute on function ops.keep_statement_line_totals() to alliance_transformer;

-- What keeps the totals honest: a line's section, in_totals and amount_rc are written once. An UPDATE changing any
-- of them is refused (row trigger `alliance_line_totals_frozen`); rewrite a line by deleting and inserting it.
create or replace function ops.refuse_statement_line_total_change() returns trigger
    language plpgsql set search_path = pg_catalog, pg_temp
as $$
begin
    raise exception 'partner_statement_lines: a line''s section, in_totals and amount_rc are written once (their totals '
        'are kept by difference, migration 0022); delete the line and insert it again instead of updating them'
        using errcode = 'raise_exception';
end
$$;
revoke all on function ops.refuse_statement_line_total_change() from public;
grant execute on function ops.refuse_statement_line_total_change() to alliance_transformer;
