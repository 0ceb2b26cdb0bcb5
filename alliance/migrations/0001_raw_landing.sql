-- 0001: the landing tables (formerly connectors/raw_schema.sql). Connectors write here and nowhere else.
-- Written with `if not exists` so a warehouse created by older code (which ran this DDL before every load) upgrades.
create schema if not exists raw;

-- One row per connector run for one source and entity; the run log of ingestion.
create table if not exists raw.loads (
    load_id             uuid primary key,
    source_id           text not null,                 -- partner id or referral network id
    entity              text not null,                 -- 'orders' | 'clicks'
    platform            text not null,                 -- shopify | woocommerce | referral_network | webhook
    started_at          timestamptz not null default now(),
    finished_at         timestamptz,
    status              text not null default 'running', -- running | succeeded | failed
    records_landed      integer not null default 0,
    records_quarantined integer not null default 0,
    pages               integer not null default 0,
    cursor_from         timestamptz,
    cursor_to           timestamptz,
    error               text
);

-- Incremental position per source and entity, moved in the same transaction as the data it covers.
create table if not exists raw.cursors (
    source_id    text not null,
    entity       text not null,
    cursor_value timestamptz not null,
    load_id      uuid not null,
    updated_at   timestamptz not null default now(),
    primary key (source_id, entity)
);

-- Latest version of each storefront order (upsert keeps the greatest updated_at).
-- payload is the platform's JSON with every e-mail field replaced by customer_key.
-- For woocommerce, payload->'alliance_refunds' holds the fetched /orders/{id}/refunds list.
create table if not exists raw.orders (
    partner_id   text not null,
    order_id     text not null,
    platform     text not null,
    updated_at   timestamptz not null,
    customer_key text,
    payload      jsonb not null,
    load_id      uuid not null,
    loaded_at    timestamptz not null default now(),
    cancelled_seen_at timestamptz,                      -- see below
    primary key (partner_id, order_id)
);

-- cancelled_seen_at: the updated_at of the first landed version carrying the cancelled status (Shopify
-- `cancelled_at`/`voided`, WooCommerce cancelled/failed/trash), kept while later versions stay cancelled and cleared
-- by one that is not (PRODUCT.md §3 cancellation time; connectors/landing.py). Added to older warehouses without
-- taking the table's exclusive lock on every load: only when the column is missing.
do $$ begin
    if not exists (select 1 from pg_attribute where attrelid = 'raw.orders'::regclass
                   and attname = 'cancelled_seen_at' and not attisdropped) then
        alter table raw.orders add column cancelled_seen_at timestamptz;
    end if;
end $$;

-- Payloads are stored uncompressed (out of line): pglz costs more CPU than the landing itself and this
-- build has no lz4; raw pages are written once per version and read in bulk by dbt.
alter table raw.orders alter column payload set storage external;

-- Referral clicks from referral networks (and later webhooks); immutable events.
create table if not exists raw.clicks (
    network_id   text not null,
    click_id     text not null,
    clicked_at   timestamptz not null,
    customer_key text,
    payload      jsonb not null,                        -- CustomerEmail replaced by customer_key
    load_id      uuid not null,
    loaded_at    timestamptz not null default now(),
    primary key (network_id, click_id)
);

-- Records that could not be read; nothing of them reaches analytics.
create table if not exists raw.quarantine (
    quarantine_id  bigserial primary key,
    load_id        uuid,
    source_id      text not null,
    entity         text not null,
    record_key     text,                                -- the id, when one could be read
    reason         text not null,
    payload        text not null,                       -- as received, e-mails replaced
    quarantined_at timestamptz not null default now()
);

-- The transform's incremental models read only rows loaded since their last run.
create index if not exists orders_loaded_at_idx on raw.orders (loaded_at);
create index if not exists clicks_loaded_at_idx on raw.clicks (loaded_at);

-- Orders deleted upstream (Shopify `orders/delete`, WooCommerce `order.deleted` webhooks; PRODUCT.md §3): kept and
-- treated as cancelled at `deleted_at` (the webhook's receipt time in the inbox) unless a later version of the
-- order has landed since (a WooCommerce order restored from trash). One row per order: the latest deletion.
create table if not exists raw.order_deletions (
    partner_id   text not null,
    order_id     text not null,
    deleted_at   timestamptz not null,
    source       text not null,                         -- webhook topic (or 'poll') that reported it
    loaded_at    timestamptz not null default now(),
    primary key (partner_id, order_id)
);

-- Erased customers (connectors/erasure.py, PRODUCT.md §4): sha256 of each erased customer_key, never the key and
-- no link to the surrogate that replaced it. A newer version of an order placed before the erasure keeps its
-- surrogate instead of re-linking the order to the person's key (connectors/landing.py).
create table if not exists raw.erased_customers (
    key_hash     text not null,
    scope        text not null,                          -- the storefront erased at, or '*' for every one
    erased_at    timestamptz not null default now(),
    primary key (key_hash, scope)
);
