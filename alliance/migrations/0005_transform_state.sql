-- 0005: the fingerprint of each build schema's last clean build (alliance/incremental.py): a different one, or none,
-- makes the next build a full refresh.
create schema if not exists ops;

create table if not exists ops.transform_state (
    build_schema text primary key,
    fingerprint  text not null,
    updated_at   timestamptz not null default now()
);
