-- 0014: reserved for another branch of issue 22 (migrations must run 1..n without gaps, alliance/migrate.py).
-- Branch h22c (claims, 0015) carries this empty placeholder so its own migration applies; drop it when merging the
-- branch that owns 0014.
select 1;
