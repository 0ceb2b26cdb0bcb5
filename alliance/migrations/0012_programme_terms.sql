-- 0012: §8 partner programmes mirrored for dbt: the contract terms (tiers as a JSON list of {from_orders, rate},
-- caps in the reporting currency, clawback) on the default commission and on each dated contract, and the
-- adjustments and reviews CSVs, checked row by row by alliance/config.py before they land here.
alter table raw.cfg_partners
    add column if not exists commission_tiers         jsonb,
    add column if not exists commission_cap_per_order numeric,
    add column if not exists commission_cap_per_month numeric,
    add column if not exists commission_clawback      boolean not null default false;

alter table raw.cfg_contracts
    add column if not exists tiers         jsonb,
    add column if not exists cap_per_order numeric,
    add column if not exists cap_per_month numeric,
    add column if not exists clawback      boolean not null default false;

create table if not exists raw.cfg_adjustments (
    line                   integer primary key,        -- the CSV line, so a statement can name it
    month                  date not null,              -- first day of the month
    referrer_partner_id    text not null,
    destination_partner_id text not null,
    amount                 numeric not null,           -- reporting currency; positive = destination owes referrer
    reason                 text not null
);

create table if not exists raw.cfg_reviews (
    partner_id  text not null,                         -- the destination whose order was held
    order_id    text not null,
    decision    text not null,                         -- approve | reject
    reviewed_at timestamptz not null,
    line        integer not null,
    primary key (partner_id, order_id)
);

-- §8.2 monthly caps need a running total in which each row adds only what fits under its own cap:
-- earned(row) = min(amount, max(0, cap - total before it)); a row without a cap adds its whole amount. The new total
-- is greatest(total, least(total + amount, cap)). An aggregate (used as a window over a programme month) keeps it one
-- pass; dbt (int_attribution__programme) decides which rows, in which order, with which amount and cap.
create schema if not exists ops;
create or replace function ops.capped_running_sum_step(total numeric, amount numeric, cap numeric)
returns numeric language sql immutable parallel safe as $$
    select case when cap is null then total + amount else greatest(total, least(total + amount, cap)) end
$$;
create or replace aggregate ops.capped_running_sum(numeric, numeric) (
    sfunc = ops.capped_running_sum_step, stype = numeric, initcond = '0'
);

-- the transformer keeps the config mirror (alliance/migrations/0010_component_roles.sql)
grant insert, update, delete on raw.cfg_adjustments, raw.cfg_reviews to alliance_transformer;
