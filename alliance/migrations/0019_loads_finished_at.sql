-- Every transform run reads raw.loads by finished_at: the run log's "landed since the previous run"
-- (alliance/manifest.py partners_loaded). raw.loads gets a row per webhook delivery and per poll, so without an
-- index that fixed cost of the event path grows with every order ever landed.
create index if not exists loads_finished_at_idx on raw.loads (finished_at);
