-- 0013: the published copies of ops.kpi_alerts (analytics, analytics_prev) get their shape here, once, instead of by
-- an ALTER TABLE at every alert evaluation (alliance/alerts/store.py): an ALTER, even a no-op one, takes ACCESS
-- EXCLUSIVE and queues BI readers (PRODUCT.md §5). Copies written by older code that lack a column of ops.kpi_alerts
-- (the episode columns of 0006) are brought to its shape; up-to-date copies, and warehouses without any, are not
-- touched (no lock taken). Later publishes create the copy `like ops.kpi_alerts`.
do $$
declare
    copy regclass;
begin
    foreach copy in array array[to_regclass('analytics.kpi_alerts'), to_regclass('analytics_prev.kpi_alerts')] loop
        continue when copy is null or not exists (
            select attname from pg_attribute where attrelid = 'ops.kpi_alerts'::regclass and attnum > 0
                                                and not attisdropped
            except
            select attname from pg_attribute where attrelid = copy and attnum > 0 and not attisdropped);
        execute format(
            'alter table %s drop constraint if exists kpi_alerts_rule_id_partner_id_period_key,'
            ' add column if not exists state text not null default ''firing'','
            ' add column if not exists resolved_at timestamptz,'
            ' add column if not exists resolved_run_id text,'
            ' add column if not exists resolved_value numeric,'
            ' add column if not exists kind text not null default ''threshold'','
            ' add column if not exists baseline numeric', copy);
    end loop;
end
$$;
