-- 0018: what each build rewrote (alliance/incremental.py writes it after a successful dbt build), so that the
-- quality gate of an incremental run checks those rows and keeps whole-table invariants as cheap aggregates
-- (alliance/gate_scope.py), while a full build is checked whole.
create schema if not exists ops;

create table if not exists ops.build_scopes (
    build_schema text primary key,
    full_refresh boolean not null,  -- marts built from scratch (or no usable snapshot): every row is checked
    orders_after timestamptz,       -- rewritten: orders recomputed (or re-rated) after this work-table state
    clicks_after timestamptz,       -- rewritten: clicks the work tables took in after this state
    raw_orders_after timestamptz,   -- raw rows the build took in: landed after this (its work tables' state, minus
    raw_clicks_after timestamptz,   -- the overlap dbt re-reads), checked by the gate like the rewritten rows
    recorded_at  timestamptz not null default now(),
    check (full_refresh or (orders_after is not null and clicks_after is not null
                            and raw_orders_after is not null and raw_clicks_after is not null))
);

-- the raw_orders suite's freshness check reads each partner's newest landing from this index, never the table
create index if not exists orders_partner_loaded_at_idx on raw.orders (partner_id, loaded_at);
create index if not exists loads_source_entity_finished_idx on raw.loads (source_id, entity, finished_at);
