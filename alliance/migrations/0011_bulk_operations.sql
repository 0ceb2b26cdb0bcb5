-- 0011: the Shopify bulk operation whose result a source is landing (connectors/shopify_bulk.py), kept with the
-- cursor and set in the same page transaction: a run killed while landing a bulk result resumes from that
-- operation's file instead of starting another; cleared once its last page has landed.
alter table raw.cursors add column if not exists bulk_operation_id text;
