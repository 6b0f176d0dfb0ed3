-- earshot schema, version 5: `no_call` is a supervision state of its own.
--
-- Until version 4 a session whose supervisor's leg was up with no call (docs/design.md §2:
-- the call vanished while the phone rang, or a persistent session waits for the agent's next
-- call) was stored as `active`, so the stored row lost what the API showed. SQLite cannot
-- change a CHECK constraint in place: the table is rebuilt with the same columns, in the same
-- order, and the new value allowed (no other table refers to `supervisions`). Rows keep their
-- state: an `active` row written by an earlier version stays `active`; if it is still open
-- at start-up, the restart's recovery closes it as before.

CREATE TABLE supervisions_v5 (
    id            TEXT PRIMARY KEY,
    call_id       TEXT REFERENCES calls (id),
    supervisor_id TEXT,
    agent_id      TEXT,
    state         TEXT NOT NULL
                  CHECK (state IN ('requested', 'active', 'no_call', 'stopped', 'failed',
                                   'aborted')),
    mode          TEXT NOT NULL
                  CHECK (mode IN ('listen', 'whisper', 'barge', 'takeover', 'takeover_listen')),
    end_reason    TEXT,
    scope         TEXT NOT NULL CHECK (scope IN ('call', 'persistent')),
    created_at_ms INTEGER NOT NULL,
    started_at_ms INTEGER,
    ended_at_ms   INTEGER,
    media         TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(media)),
    CHECK ((state IN ('stopped', 'failed', 'aborted')) = (ended_at_ms IS NOT NULL)),
    CHECK (scope = 'persistent' OR call_id IS NOT NULL)
);
INSERT INTO supervisions_v5 (id, call_id, supervisor_id, agent_id, state, mode, end_reason,
                             scope, created_at_ms, started_at_ms, ended_at_ms, media)
    SELECT id, call_id, supervisor_id, agent_id, state, mode, end_reason, scope, created_at_ms,
           started_at_ms, ended_at_ms, media
    FROM supervisions;
DROP TABLE supervisions;
ALTER TABLE supervisions_v5 RENAME TO supervisions;

CREATE INDEX supervisions_by_call ON supervisions (call_id);
CREATE INDEX supervisions_by_created ON supervisions (created_at_ms);
CREATE INDEX supervisions_open ON supervisions (created_at_ms, id)
    WHERE state IN ('requested', 'active', 'no_call');
