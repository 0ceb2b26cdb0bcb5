-- 0015: §9.2 partner claims. The claims CSV files of the config (`claims:`) are landed by connectors/claims.py at the
-- start of every transform: raw.claims mirrors the valid rows of those files (one row per claim_id; identical
-- repeats count once), and bad rows go to raw.quarantine (source_id 'claims', entity 'claims') with their reason.
create table if not exists raw.claims (
    claim_id               text primary key,
    referrer_partner_id    text not null,               -- the claimant
    destination_partner_id text not null,               -- the storefront of the order
    order_id               text not null,
    claimed_at             timestamptz not null,        -- UTC
    source_file            text not null,               -- the CSV's name (within the claims folder, if one)
    source_line            integer not null,            -- the first line carrying this claim
    loaded_at              timestamptz not null default now()  -- when this content first landed
);

-- the transformer lands the claims next to the config mirror (alliance/run.py prepare); the loader keeps rows of raw.*
grant select, insert, update, delete on raw.claims to alliance_transformer;
grant insert, select on raw.quarantine to alliance_transformer;
grant usage, select on sequence raw.quarantine_quarantine_id_seq to alliance_transformer;
