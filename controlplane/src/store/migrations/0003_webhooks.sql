-- earshot schema, version 3: webhook delivery (SPEC §5).

-- How far the event log has been fanned out to the webhooks: every event with an id up to
-- `after_event_id` has a delivery row for each webhook that was enabled and matched it when it
-- was fanned out. One row. It starts at the log's tail: the webhooks that exist (none before
-- this version had an API) get the events committed from now on.
CREATE TABLE webhook_cursor (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    after_event_id INTEGER NOT NULL CHECK (after_event_id >= 0)
);
INSERT INTO webhook_cursor (id, after_event_id) SELECT 1, COALESCE(MAX(id), 0) FROM events;

-- A webhook's deliveries go in event order: the next one is its unfinished delivery with the
-- lowest event id.
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (webhook_id, event_id)
    WHERE next_attempt_at_ms IS NOT NULL;
