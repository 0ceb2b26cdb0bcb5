-- 0003: webhook bookkeeping next to the raw landing tables (formerly alliance/webhooks/schema.sql).
create schema if not exists raw;

-- The inbox: every verified delivery, stored before the answer (PRODUCT.md §7), once per delivery id.
-- payload is the body AFTER data minimisation and e-mail scrubbing (connectors/minimise.py, connectors/pii.py):
-- no personal data is stored. The processor lands pending rows after the answer; a row whose processing fails
-- (partner API down, erasure failing) stays pending with its error and is retried with backoff, then 'failed'.
create table if not exists raw.webhook_inbox (
    inbox_id        bigserial primary key,
    platform        text not null,                  -- shopify | woocommerce | network
    source_id       text not null,                  -- partner id or referral network id
    delivery_id     text not null,
    topic           text not null,
    received_at     timestamptz not null default now(),  -- the warehouse clock; an orders/delete's deletion time
    payload         jsonb,                          -- minimised and scrubbed; null when ignored or unreadable
    body_error      text,                           -- why the verified body could not be read (names no value)
    status          text not null default 'pending',  -- pending | done | ignored | failed
    attempts        integer not null default 0,
    next_attempt_at timestamptz not null default now(),
    last_error      text,
    processed_at    timestamptz,
    outcome         text,
    unique (platform, source_id, delivery_id)
);
create index if not exists webhook_inbox_due on raw.webhook_inbox (next_attempt_at) where status = 'pending';
-- /healthz counts the open rows (pending, failed) on every probe: an index of those only, whatever the inbox's size.
create index if not exists webhook_inbox_open on raw.webhook_inbox (status) where status in ('pending', 'failed');

-- Shopify `customers/data_request`: recorded for the partner manager to answer (no personal data: the customer's
-- key, the order ids the shop listed). answered_at is set by whoever answers.
create table if not exists raw.webhook_data_requests (
    inbox_id           bigint primary key references raw.webhook_inbox (inbox_id),
    partner_id         text not null,
    customer_key       text,
    shopify_request_id text,
    order_ids          jsonb not null default '[]',
    received_at        timestamptz not null,
    answered_at        timestamptz
);

-- Transactional outbox: one row per processed delivery that changed raw, written in the same transaction as the
-- data. The notifier turns pending rows into Airflow asset events and stamps notified_at; a crash or an
-- unreachable Airflow leaves them pending, so a restart still announces every processed event.
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
