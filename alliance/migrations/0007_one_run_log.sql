-- 0007: one run log. ops.runs (status and step of each run) and raw.run_manifest (what each run loaded, with which
-- code, config and tools, what its checks found, whether it was published) were written side by side at every step.
-- ops.runs now holds both: the manifest's columns are added, its rows copied in, and raw.run_manifest dropped.
-- `status` is the run's progress (running, published, succeeded, failed, gate_failed, refused, rolled_back);
-- `published` says whether the run's build was ever published, whatever happened after (alerts failing, a rollback).
-- analytics.run_manifest, the published copy, keeps its columns (alliance/publish.py).
alter table ops.runs add column if not exists kind            text not null default 'transform';  -- transform | rollback
alter table ops.runs add column if not exists published       boolean not null default false;
alter table ops.runs add column if not exists published_at    timestamptz;
alter table ops.runs add column if not exists partners_loaded jsonb;  -- {"orders": {partner: rows}, "clicks": ...}
alter table ops.runs add column if not exists git_commit      text;
alter table ops.runs add column if not exists config_hash     text;
alter table ops.runs add column if not exists tool_versions   jsonb;
alter table ops.runs add column if not exists checks_passed   integer;
alter table ops.runs add column if not exists checks_failed   integer;
alter table ops.runs add column if not exists failures        jsonb;  -- [{table, column, expectation, message, ...}]
alter table ops.runs add column if not exists data_docs       text;

alter table ops.runs drop constraint if exists runs_status_check;
alter table ops.runs add constraint runs_status_check check (status in (
    'running', 'published', 'succeeded', 'failed', 'gate_failed', 'refused', 'rolled_back'));

-- Existing rows: a run in both logs keeps ops.runs' status, step and message and gains the manifest's facts; a run
-- only in the manifest (refused runs, rollbacks) is copied whole.
insert into ops.runs (run_id, kind, started_at, finished_at, status, message, row_counts, published, published_at,
                      partners_loaded, git_commit, config_hash, tool_versions, checks_passed, checks_failed,
                      failures, data_docs)
select run_id, kind, started_at, finished_at, status, message, row_counts, published, published_at,
       partners_loaded, git_commit, config_hash, tool_versions, checks_passed, checks_failed, failures, data_docs
from raw.run_manifest
on conflict (run_id) do update set
    kind            = excluded.kind,
    started_at      = least(ops.runs.started_at, excluded.started_at),
    finished_at     = coalesce(ops.runs.finished_at, excluded.finished_at),
    message         = coalesce(ops.runs.message, excluded.message),
    row_counts      = coalesce(ops.runs.row_counts, excluded.row_counts),
    published       = excluded.published,
    published_at    = excluded.published_at,
    partners_loaded = excluded.partners_loaded,
    git_commit      = excluded.git_commit,
    config_hash     = excluded.config_hash,
    tool_versions   = excluded.tool_versions,
    checks_passed   = excluded.checks_passed,
    checks_failed   = excluded.checks_failed,
    failures        = excluded.failures,
    data_docs       = excluded.data_docs;

drop table raw.run_manifest;

create index if not exists runs_started_at on ops.runs (started_at);
