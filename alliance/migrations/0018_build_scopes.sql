-- 0018: what each build rewrote (alliance/incremental.py writes it after a successful dbt build), so that the
-- quality gate of an incremental run checks those rows and keeps whole-table invariants as cheap aggregates
-- (alliance/gate_scope.py), while a full build is checked whole.
create schema if not exists ops;

create table if not exists ops.build_scopes (
    build_schema text primary key,
    full_refresh boolean not null,  -- marts built from scratch (or no usable snapshot): every row is checked
    orders_after timestamptz,       -- rewritten: orders recomputed (or re-rated) after this work-table state
    clicks_after timestamptz,       -- rewritten: clicks the work tables took in after this state
    recorded_at  timestamptz not null default now(),
    check (full_refresh or (orders_after is not null and clicks_after is not null))
);
