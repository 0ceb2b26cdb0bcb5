-- 0016: partner-scoped access (PRODUCT.md §9.3). A partner's login is a member of the NOLOGIN group role
-- alliance_partner, which alliance/partner_scope.py grants SELECT on the published tables and gives a row-level
-- security policy on each (at every publish, on the build schema before the swap). The policies compare the rows'
-- partner columns with ops.current_partner_id(): the partner of the session's login, from ops.partner_logins.
-- Partners may execute that function and nothing else of ops: they never see the mapping of any other login.
do $$
begin
    if not exists (select 1 from pg_roles where rolname = 'alliance_partner') then
        begin
            execute 'create role alliance_partner nologin';
        exception when duplicate_object or unique_violation then
            null;  -- another database's migration created it at the same moment
        end;
    end if;
end
$$;

create table if not exists ops.partner_logins (
    login      text primary key,
    partner_id text not null unique,
    created_at timestamptz not null default now()
);
comment on table ops.partner_logins is 'Partner logins (alliance partner-access): which partner each LOGIN role reads as';
revoke all on ops.partner_logins from public, alliance_partner;

-- session_user: the login itself (inside a SECURITY DEFINER function current_user is the function's owner)
create or replace function ops.current_partner_id() returns text
    language sql stable security definer set search_path = pg_catalog, pg_temp
as $$
    select partner_id from ops.partner_logins where login = session_user
$$;
revoke all on function ops.current_partner_id() from public;
grant execute on function ops.current_partner_id() to alliance_partner;

-- a deployment that revoked CONNECT from public (deploy/postgres-roles.sh) lets partner logins in explicitly
do $$
begin
    execute format('grant connect on database %I to alliance_partner', current_database());
end
$$;
