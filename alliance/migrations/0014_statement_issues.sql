-- 0014: §9.1 which partner statements were issued for which month, and what they said. A month's statements are
-- written on the first run after its lock date; a later run that changes any of the month's numbers rewrites the
-- partner's statement with `revised` set (alliance/statements/issue.py). content_hash is a sha256 of the lines and
-- totals as written, so a run that changes nothing rewrites nothing.
create table if not exists ops.statement_issues (
    month            date        not null,
    partner_id       text        not null,
    content_hash     text        not null,
    revision         integer     not null default 0 check (revision >= 0),
    first_issued_at  timestamptz not null default now(),
    revised_at       timestamptz,
    last_run_id      text,
    primary key (month, partner_id),
    check ((revision = 0) = (revised_at is null))
);
comment on table ops.statement_issues is
    '§9.1 partner statements issued per (month, partner): hash of the content, revision (0 = first issue), when.';
