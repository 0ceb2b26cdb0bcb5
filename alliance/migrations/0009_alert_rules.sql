-- 0009: the alert rules file mirrored into the warehouse, so dbt computes every rule's observations (baselines,
-- pace projections, breaches: dbt_project/models/marts/kpi_alert_observations.sql) and the evaluator only reads
-- them. Rewritten at the start of every transform (alliance/alerts/sync.py), like the cfg tables of 0002.
create schema if not exists raw;

create table if not exists raw.cfg_alert_rules (
    rule_id          text primary key,
    rule_kind        text not null,          -- threshold | trailing | pace
    kpi              text,                   -- partner_kpis_daily column; for pace the objective metric or null (all)
    comparison       text not null,          -- above | below
    threshold        numeric not null,       -- the number, the relative change, or the attainment share
    trailing_days    integer,                -- trailing rules: the window before the day
    min_volume_kpi   text,                   -- trailing rules: volume column summed over the window and the day
    min_volume       numeric not null default 0,
    min_elapsed_days integer                 -- pace rules: days of the month elapsed before projecting
);
