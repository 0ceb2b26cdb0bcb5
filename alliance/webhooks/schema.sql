-- Webhook bookkeeping next to the raw landing tables. Idempotent DDL, run when the receiver starts.
create schema if not exists raw;

-- Every accepted delivery id, per platform and source: a second delivery with the same id is a replay.
create table if not exists raw.webhook_deliveries (
    platform     text not null,                  -- shopify | woocommerce | network
    source_id    text not null,                  -- partner id or referral network id
    delivery_id  text not null,
    topic        text not null,
    received_at  timestamptz not null default now(),
    load_id      uuid not null,
    primary key (platform, source_id, delivery_id)
);

-- Transactional outbox: one row per landed delivery, written in the same transaction as the data.
-- The notifier turns pending rows into Airflow asset events and stamps notified_at; a crash or an
-- unreachable Airflow leaves them pending, so a restart still announces every acknowledged event.
create table if not exists raw.webhook_outbox (
    outbox_id    bigserial primary key,
    asset_uri    text not null,
    platform     text not null,
    source_id    text not null,
    delivery_id  text not null,
    created_at   timestamptz not null default now(),
    notified_at  timestamptz,
    attempts     integer not null default 0,
    last_error   text
);
create index if not exists webhook_outbox_pending on raw.webhook_outbox (outbox_id) where notified_at is null;
