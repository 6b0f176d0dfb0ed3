-- earshot schema, version 1 (SQLite).
--
-- Conventions: times are INTEGER milliseconds since the Unix epoch (`*_at_ms`); booleans are
-- INTEGER 0/1; closed sets are TEXT with a CHECK listing the values the Rust enums write;
-- JSON is TEXT checked with json_valid(). Entity ids are TEXT chosen by the API; log ids are
-- INTEGER PRIMARY KEY AUTOINCREMENT (strictly increasing, never reused).

CREATE TABLE users (
    id           TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    phone_number TEXT
);

CREATE TABLE user_roles (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role    TEXT NOT NULL CHECK (role IN ('admin', 'supervisor', 'agent', 'softswitch')),
    PRIMARY KEY (user_id, role)
);

-- Bearer tokens: only their 32-byte hash (computed by the caller) is stored.
CREATE TABLE tokens (
    id            TEXT PRIMARY KEY,
    token_hash    BLOB NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    role          TEXT NOT NULL CHECK (role IN ('admin', 'supervisor', 'agent', 'softswitch')),
    user_id       TEXT REFERENCES users (id) ON DELETE CASCADE,
    created_at_ms INTEGER NOT NULL,
    revoked_at_ms INTEGER
);
CREATE INDEX tokens_by_user ON tokens (user_id);

CREATE TABLE supervisor_settings (
    user_id           TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    registered_number TEXT NOT NULL,
    updated_at_ms     INTEGER NOT NULL
);

CREATE TABLE groups (
    id                     TEXT PRIMARY KEY,
    name                   TEXT NOT NULL UNIQUE,
    kind                   TEXT NOT NULL CHECK (kind IN ('standard', 'mutual_aid')),
    lock_last_member       INTEGER NOT NULL CHECK (lock_last_member IN (0, 1)),
    agent_beep             TEXT NOT NULL
                           CHECK (agent_beep IN ('none', 'agent_beep', 'periodic_notice')),
    -- NULL: no cap.
    max_monitors_per_agent INTEGER CHECK (max_monitors_per_agent >= 1),
    created_at_ms          INTEGER NOT NULL
);

CREATE TABLE group_supervisors (
    group_id        TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    group_admin     INTEGER NOT NULL CHECK (group_admin IN (0, 1)),
    listen_right    INTEGER NOT NULL CHECK (listen_right IN (0, 1)),
    -- whisper, barge, takeover
    intervene_right INTEGER NOT NULL CHECK (intervene_right IN (0, 1)),
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_supervisors_by_user ON group_supervisors (user_id);

CREATE TABLE group_members (
    group_id  TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    can_leave INTEGER NOT NULL CHECK (can_leave IN (0, 1)),
    logged_in INTEGER NOT NULL CHECK (logged_in IN (0, 1)),
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_by_user ON group_members (user_id);

CREATE TABLE agents (
    user_id         TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    state           TEXT NOT NULL
                    CHECK (state IN ('available', 'busy', 'standby', 'pause', 'disconnected')),
    state_since_ms  INTEGER NOT NULL,
    pause_reason    TEXT CHECK (pause_reason IS NULL OR state = 'pause'),
    campaign        TEXT,
    platform        TEXT CHECK (platform IN ('web', 'app')),
    auto_assignment INTEGER NOT NULL CHECK (auto_assignment IN (0, 1)),
    aggregates      TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(aggregates))
);

-- Persistent-supervision grants; revoked ones are kept.
CREATE TABLE grants (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    supervisor_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    agent_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    granted_by    TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    revoked_at_ms INTEGER
);
-- At most one unrevoked grant per pair.
CREATE UNIQUE INDEX grants_active ON grants (supervisor_id, agent_id) WHERE revoked_at_ms IS NULL;
CREATE INDEX grants_by_agent ON grants (agent_id);

CREATE TABLE subscriptions (
    supervisor_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    agent_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (supervisor_id, agent_id)
);
CREATE INDEX subscriptions_by_agent ON subscriptions (agent_id);

-- Calls and supervisions are history: never deleted, so no cascades. Their user ids are not
-- foreign keys: the softswitch may name agents the appliance has no user for.
CREATE TABLE calls (
    id             TEXT PRIMARY KEY,
    external_id    TEXT UNIQUE,
    agent_id       TEXT,
    state          TEXT NOT NULL CHECK (state IN ('active', 'ended')),
    on_hold        INTEGER NOT NULL CHECK (on_hold IN (0, 1)),
    consult        INTEGER NOT NULL CHECK (consult IN (0, 1)),
    secure_payment INTEGER NOT NULL CHECK (secure_payment IN (0, 1)),
    conference     INTEGER NOT NULL CHECK (conference IN (0, 1)),
    web            INTEGER NOT NULL CHECK (web IN (0, 1)),
    created_at_ms  INTEGER NOT NULL,
    ended_at_ms    INTEGER,
    CHECK ((state = 'ended') = (ended_at_ms IS NOT NULL))
);
CREATE INDEX calls_by_state ON calls (state);
CREATE INDEX calls_by_created ON calls (created_at_ms);

CREATE TABLE supervisions (
    id            TEXT PRIMARY KEY,
    call_id       TEXT REFERENCES calls (id),
    supervisor_id TEXT,
    agent_id      TEXT,
    state         TEXT NOT NULL
                  CHECK (state IN ('requested', 'active', 'stopped', 'failed', 'aborted')),
    mode          TEXT NOT NULL
                  CHECK (mode IN ('listen', 'whisper', 'barge', 'takeover', 'takeover_listen')),
    end_reason    TEXT,
    scope         TEXT NOT NULL CHECK (scope IN ('call', 'persistent')),
    created_at_ms INTEGER NOT NULL,
    started_at_ms INTEGER,
    ended_at_ms   INTEGER,
    CHECK ((state IN ('stopped', 'failed', 'aborted')) = (ended_at_ms IS NOT NULL)),
    CHECK (scope = 'persistent' OR call_id IS NOT NULL)
);
CREATE INDEX supervisions_by_state ON supervisions (state);
CREATE INDEX supervisions_by_call ON supervisions (call_id);
CREATE INDEX supervisions_by_created ON supervisions (created_at_ms);

-- Append-only logs. No foreign keys: a log record is never refused (or lost) because of
-- another row, and it outlives what it names.
CREATE TABLE alerts (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    supervision_id TEXT,
    kind           TEXT NOT NULL,
    text           TEXT NOT NULL,
    at_ms          INTEGER NOT NULL
);
CREATE INDEX alerts_by_supervision ON alerts (supervision_id);

CREATE TABLE audit (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms          INTEGER NOT NULL,
    actor          TEXT NOT NULL,
    action         TEXT NOT NULL,
    supervision_id TEXT,
    call_id        TEXT,
    mode           TEXT
                   CHECK (mode IN ('listen', 'whisper', 'barge', 'takeover', 'takeover_listen')),
    outcome        TEXT NOT NULL,
    detail         TEXT
);
CREATE INDEX audit_by_supervision ON audit (supervision_id);

CREATE TRIGGER alerts_append_only_update BEFORE UPDATE ON alerts
BEGIN SELECT RAISE(ABORT, 'alerts are append-only'); END;
CREATE TRIGGER alerts_append_only_delete BEFORE DELETE ON alerts
BEGIN SELECT RAISE(ABORT, 'alerts are append-only'); END;
CREATE TRIGGER audit_append_only_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_append_only_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

-- The SSE log; `id` is the SSE event id (Last-Event-ID). `scope` is {"groups": [...],
-- "users": [...]}: who besides admins may see the event.
CREATE TABLE events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms      INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    payload    TEXT NOT NULL CHECK (json_valid(payload)),
    scope      TEXT NOT NULL CHECK (json_valid(scope))
);

CREATE TABLE webhooks (
    id                   TEXT PRIMARY KEY,
    url                  TEXT NOT NULL,
    secret               TEXT NOT NULL,
    -- JSON array of event types; empty: all.
    event_types          TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(event_types)),
    enabled              INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    consecutive_failures INTEGER NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0),
    disabled_at_ms       INTEGER,
    created_at_ms        INTEGER NOT NULL
);

CREATE TABLE webhook_deliveries (
    event_id           INTEGER NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    webhook_id         TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    attempts           INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- NULL: finished (delivered or given up).
    next_attempt_at_ms INTEGER,
    last_status        INTEGER CHECK (last_status BETWEEN 100 AND 599),
    last_error         TEXT,
    PRIMARY KEY (event_id, webhook_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at_ms)
    WHERE next_attempt_at_ms IS NOT NULL;
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id);
