-- 0021: exact row counts of the large published tables, kept by difference as their rows are written, so that the
-- quality gate of an incremental build (alliance/gate_scope.py) and its publish read a whole-table row count in one
-- lookup instead of counting millions of rows on every run.
--
-- Per table (by oid, which survives the schema swaps of a publish): its row count. The dbt post-hook
-- `keep_row_count` (dbt_project/macros/incremental/table_upkeep.sql) creates the table's triggers and seeds its count
-- in one statement; from then on every INSERT, DELETE and TRUNCATE on it adjusts the count in the writing
-- transaction (a rolled-back build rolls its adjustment back), from the statement's transition table.
create schema if not exists ops;

create table if not exists ops.table_row_counts (
    table_oid  oid primary key,
    row_count  bigint not null check (row_count >= 0),
    seeded_at  timestamptz not null default now()
);
grant select, insert, update, delete on ops.table_row_counts to alliance_transformer;

create or replace function ops.keep_table_row_count() returns trigger
    language plpgsql set search_path = pg_catalog, pg_temp
as $$
begin
    if tg_op = 'INSERT' then
        update ops.table_row_counts set row_count = row_count + (select count(*) from inserted_rows)
        where table_oid = tg_relid;
    elsif tg_op = 'DELETE' then
        update ops.table_row_counts set row_count = row_count - (select count(*) from deleted_rows)
        where table_oid = tg_relid;
    elsif tg_op = 'TRUNCATE' then
        update ops.table_row_counts set row_count = 0 where table_oid = tg_relid;
    end if;
    return null;
end
$$;
revoke all on function ops.keep_table_row_count() from public;
grant execute on function ops.keep_table_row_count() to alliance_transformer;
