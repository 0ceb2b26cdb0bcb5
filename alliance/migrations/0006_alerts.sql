-- 0006: KPI alerts (formerly alliance/alerts/store.py). ops.kpi_alerts is the source of truth, one row per episode;
-- ops.alert_deliveries is the delivery outbox, a row per (episode event, routed channel).
create schema if not exists ops;

create table if not exists ops.kpi_alerts (
    alert_id    text primary key,                 -- rule_id:partner_id:period:episode, deterministic
    rule_id     text not null,
    severity    text not null,
    partner_id  text not null,
    kpi         text not null,
    period      date not null,                    -- the KPI day (kpi_date), or the month for pace rules
    value       numeric,                          -- the KPI (trailing: the day's value; pace: projected attainment)
    threshold   numeric not null,                 -- what it was compared with (trailing: baseline x (1 + change))
    comparison  text not null check (comparison in ('above', 'below')),
    fired_at    timestamptz not null default now(),
    run_id      text not null,
    state       text not null default 'firing' check (state in ('firing', 'resolved')),
    resolved_at timestamptz,
    resolved_run_id text,
    resolved_value numeric,
    kind        text not null default 'threshold',  -- threshold | trailing | pace
    baseline    numeric                            -- trailing rules: the N-day average compared with
);

-- Warehouses created before episodes: one row per (rule, partner, period), always firing.
alter table ops.kpi_alerts drop constraint if exists kpi_alerts_rule_id_partner_id_period_key;
alter table ops.kpi_alerts add column if not exists state text not null default 'firing';
alter table ops.kpi_alerts add column if not exists resolved_at timestamptz;
alter table ops.kpi_alerts add column if not exists resolved_run_id text;
alter table ops.kpi_alerts add column if not exists resolved_value numeric;
alter table ops.kpi_alerts add column if not exists kind text not null default 'threshold';
alter table ops.kpi_alerts add column if not exists baseline numeric;

create unique index if not exists kpi_alerts_one_firing on ops.kpi_alerts (rule_id, partner_id, period)
    where state = 'firing';

create table if not exists ops.alert_deliveries (
    delivery_id  bigserial primary key,
    alert_id     text not null,
    event        text not null check (event in ('fired', 'resolved')),
    channel      text not null,
    status       text not null,                    -- pending | sent | failed | skipped
    attempts     integer not null,
    error        text,                             -- exception type and short reason, never the secret or URL
    run_id       text not null,
    attempted_at timestamptz not null default now(),
    unique (alert_id, event, channel)
);

-- Warehouses created before the outbox had no `pending` status.
alter table ops.alert_deliveries drop constraint if exists alert_deliveries_status_check;
alter table ops.alert_deliveries add constraint alert_deliveries_status_check
    check (status in ('pending', 'sent', 'failed', 'skipped'));
