-- 0020: a cheap fingerprint of what each issued statement was made from (alliance/statements/lines.py
-- statement_fingerprints: order-independent sums of row hashes of the month's lines of the partner and of the month's
-- balances). A run reads, renders and hashes only the statements whose fingerprint moved; at 1M orders reading every
-- locked month's lines into Python on every run took 40 s. content_hash still decides whether a statement is revised.
alter table ops.statement_issues add column if not exists source_fingerprint text;
comment on column ops.statement_issues.source_fingerprint is
    'fingerprint of the published lines and balances the statement was last checked against (null: check it)';
