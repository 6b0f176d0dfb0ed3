-- earshot schema, version 4: the restart's "still open" lookups through partial indexes, and
-- an index nothing reads any more dropped.
--
-- `calls_by_state` and `supervisions_by_state` indexed every row by its state, though only
-- the open rows are ever looked up by it (`open_calls`, `open_sessions`: the restart's
-- recovery, SPEC §7). They grew with the history, and ending a call moved its entry from the
-- 'active' end of the index to the far 'ended' end: two index pages in the commit that ends
-- it. A partial index holds only the open rows (a few pages, whatever the history), in the
-- order those queries return them, and ending a row just removes its entry.
--
-- The WHERE clauses are exactly the queries' (SQLite uses a partial index only when the
-- query's WHERE implies the index's).

DROP INDEX calls_by_state;
CREATE INDEX calls_open ON calls (created_at_ms, id) WHERE state <> 'ended';

DROP INDEX supervisions_by_state;
CREATE INDEX supervisions_open ON supervisions (created_at_ms, id)
    WHERE state IN ('requested', 'active');

-- `webhook_deliveries_due` served the lookup of deliveries by due time, which version 3
-- replaced with the in-order lookup through `webhook_deliveries_pending`: nothing reads it,
-- and every delivery's insert and retry would still write it.
DROP INDEX webhook_deliveries_due;
