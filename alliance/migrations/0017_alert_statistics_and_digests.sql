-- 0017: alerts worth reading (issue 23). The rules mirror learns the z-score trailing rule (how the day is judged,
-- how many days of the window must hold a value, a volume floor for the day itself), and ops.alert_digests records
-- which channel got its daily digest on which day, so rules with `delivery: digest` are sent once a day.
alter table raw.cfg_alert_rules
    add column if not exists method            text,                        -- trailing rules: change | zscore
    add column if not exists min_training_days integer,                     -- trailing rules: days with a value
    add column if not exists min_day_volume_kpi text,                       -- volume column of the day itself
    add column if not exists min_day_volume    numeric not null default 0;

create table if not exists ops.alert_digests (
    channel     text not null,
    digest_day  date not null,                   -- UTC day of the delivery clock
    run_id      text not null,
    events      integer not null,                -- outbox rows the digest carried
    sent_at     timestamptz not null default now(),
    primary key (channel, digest_day)
);
