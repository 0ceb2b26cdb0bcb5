-- 0008: how far each schema's incremental marts are (dbt_project/macros/incremental/mart_snapshots.sql,
-- alliance/incremental.py); formerly dbt's on-run-start hook, which ran this DDL before every dbt invocation.
create schema if not exists ops;

-- Per build schema (by oid, which survives renames): the work-table state its marts contain and the fingerprint
-- they were built with.
create table if not exists ops.mart_snapshots (
    schema_oid     oid primary key,
    orders_through timestamptz not null,
    clicks_through timestamptz not null,
    fingerprint    text not null,
    updated_at     timestamptz not null default now()
);

-- Per published table (by oid): the as-of date its rows were computed for.
create table if not exists ops.mart_as_of_dates (
    table_oid  oid primary key,
    as_of_date date not null
);
