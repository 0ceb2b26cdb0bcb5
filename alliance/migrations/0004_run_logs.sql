-- 0004: the two run logs as older code created them (formerly alliance/publish.py and alliance/manifest.py);
-- 0007 merges them into one.
create schema if not exists ops;

-- One row per transform run: status and the step it reached (alliance/run.py).
create table if not exists ops.runs (
    run_id      text primary key,
    started_at  timestamptz not null default now(),
    finished_at timestamptz,
    status      text not null check (status in ('running', 'published', 'succeeded', 'failed', 'gate_failed')),
    step        text,
    message     text,
    row_counts  jsonb
);

create schema if not exists raw;

-- The run manifest: what each run loaded, with which code, config and tools, and what its checks found.
create table if not exists raw.run_manifest (
    run_id          text primary key,
    kind            text not null default 'transform',   -- transform | rollback
    started_at      timestamptz not null default now(),
    finished_at     timestamptz,
    status          text not null,                       -- running | published | gate_failed | failed | refused
    published       boolean not null default false,
    published_at    timestamptz,
    partners_loaded jsonb,        -- {"orders": {partner: rows}, "clicks": {network: rows}, "landed_since": ...}
    git_commit      text,
    config_hash     text,
    tool_versions   jsonb,
    checks_passed   integer,
    checks_failed   integer,
    failures        jsonb,        -- [{table, column, expectation, message, sample_rows}]
    row_counts      jsonb,        -- published tables' row counts
    data_docs       text,
    message         text
);
