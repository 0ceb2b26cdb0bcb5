-- 0002: the parsed config mirrored into the warehouse (formerly alliance/sql/config_tables.sql), so dbt (the only
-- place business rules live) can join it. Rewritten in one transaction at the start of every transform.
create schema if not exists raw;

create table if not exists raw.cfg_partners (
    partner_id                   text primary key,
    partner_name                 text,
    platform                     text not null,          -- shopify | woocommerce | none
    currency                     text not null,
    commission_type              text,                   -- percent | flat | null (no storefront)
    commission_rate              numeric,
    commission_new_customer_rate numeric,
    commission_amount            numeric
);

create table if not exists raw.cfg_referral_codes (
    code       text primary key,                          -- upper(trim(code))
    partner_id text not null
);

create table if not exists raw.cfg_contracts (
    destination_partner_id text not null,
    referrer_partner_id    text not null,
    contract_type          text not null,                 -- percent | flat
    rate                   numeric,
    new_customer_rate      numeric,
    amount                 numeric,
    effective_from         date,                          -- inclusive, null = always
    effective_to           date                           -- exclusive, null = open
);

create table if not exists raw.cfg_fx_rates (
    rate_date         date not null,
    currency          text not null,
    rate_to_reporting numeric not null,
    primary key (rate_date, currency)
);

create table if not exists raw.cfg_objectives (
    partner_id text not null,
    month      date not null,                             -- first day of the month
    metric     text not null,
    target     numeric not null,
    primary key (partner_id, month, metric)
);
