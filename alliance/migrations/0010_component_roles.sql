-- 0010: one role per component, each granted only what that component does (least privilege).
--   alliance_loader            the partner pulls and the webhook inbox processor: rows of raw.* (landing, cursors,
--                              quarantine, inbox, outbox); nothing of ops or the published schemas
--   alliance_webhook_receiver  the receiver's internet-facing HTTP side: INSERT on raw.webhook_inbox and nothing else
--                              (its id sequence, and the inbox counts of /healthz through a SECURITY DEFINER function)
--   alliance_transformer       dbt, the quality gate, the publish and the alerts: reads raw, writes the config mirror
--                              of raw, the run log and state of ops; creates the build schemas
--   alliance_bi                reads analytics only (alliance/publish.py grants the tables at each publish)
-- Roles are NOLOGIN here; the logins are set up by whoever holds the passwords: alliance/roles.py for the embedded
-- warehouse, deploy/postgres-init.sh for compose. Roles belong to the server, grants to this database.
do $$
declare
    name text;
begin
    foreach name in array array['alliance_loader', 'alliance_webhook_receiver', 'alliance_transformer',
                                'alliance_bi'] loop
        if not exists (select 1 from pg_roles where rolname = name) then
            begin
                execute format('create role %I nologin', name);
            exception when duplicate_object or unique_violation then
                null;  -- another database's migration created it at the same moment
            end;
        end if;
    end loop;
end
$$;

revoke create on schema public from public;
revoke all on schema raw, ops from public;

-- the migration check every entry point makes (alliance/migrate.py) is one read of the version table
grant usage on schema ops to alliance_loader, alliance_webhook_receiver, alliance_transformer;
grant select on ops.schema_migrations to alliance_loader, alliance_webhook_receiver, alliance_transformer;

-- loader (and the inbox processor): rows of raw, no DDL
grant usage on schema raw to alliance_loader, alliance_webhook_receiver, alliance_transformer;
grant select, insert, update, delete on all tables in schema raw to alliance_loader;
grant usage, select on all sequences in schema raw to alliance_loader;
alter default privileges in schema raw grant select, insert, update, delete on tables to alliance_loader;
alter default privileges in schema raw grant usage, select on sequences to alliance_loader;

-- webhook receiver (HTTP side): store a delivery, nothing else
grant insert on raw.webhook_inbox to alliance_webhook_receiver;
grant usage on sequence raw.webhook_inbox_inbox_id_seq to alliance_webhook_receiver;
create or replace function raw.webhook_inbox_health(out pending bigint, out failed bigint)
    language sql stable security definer set search_path = pg_catalog, pg_temp
as $$
    select count(*) filter (where status = 'pending'), count(*) filter (where status = 'failed')
    from raw.webhook_inbox where status in ('pending', 'failed')
$$;
revoke all on function raw.webhook_inbox_health() from public;
grant execute on function raw.webhook_inbox_health() to alliance_webhook_receiver, alliance_loader;

-- transformer / publisher: reads raw, keeps the config mirror, writes ops, owns its build schemas
grant select on all tables in schema raw to alliance_transformer;
alter default privileges in schema raw grant select on tables to alliance_transformer;
grant insert, update, delete on raw.cfg_partners, raw.cfg_referral_codes, raw.cfg_contracts, raw.cfg_fx_rates,
    raw.cfg_objectives, raw.cfg_alert_rules to alliance_transformer;
grant select, insert, update, delete on all tables in schema ops to alliance_transformer;
grant usage, select on all sequences in schema ops to alliance_transformer;
alter default privileges in schema ops grant select, insert, update, delete on tables to alliance_transformer;
alter default privileges in schema ops grant usage, select on sequences to alliance_transformer;
do $$
begin
    execute format('grant create on database %I to alliance_transformer', current_database());
end
$$;

-- schemas a transform built before this migration (as another login) become the transformer's, so it can rebuild
-- and swap them; tables and views in them too (a serial column's sequence follows its table)
do $$
declare
    target record;
begin
    for target in select nspname from pg_namespace
                  where nspname like 'analytics%' or nspname like 'alliance\_build%' loop
        execute format('alter schema %I owner to alliance_transformer', target.nspname);
    end loop;
    for target in select n.nspname, c.relname, c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace
                  where (n.nspname like 'analytics%' or n.nspname like 'alliance\_build%')
                    and c.relkind in ('r', 'v', 'm', 'p') and not c.relispartition loop
        execute format('alter %s %I.%I owner to alliance_transformer',
                       case target.relkind when 'v' then 'view' when 'm' then 'materialized view' else 'table' end,
                       target.nspname, target.relname);
    end loop;
end
$$;
