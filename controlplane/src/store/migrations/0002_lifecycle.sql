-- earshot schema, version 2: what the supervision lifecycle (SPEC §2) and the HTTP API need to
-- show a call or a supervision again after a restart.

-- The call's direction and progress, as the softswitch reported them (the lifecycle's rules
-- depend on them), and when the API forgot it (calls are history: the row stays).
ALTER TABLE calls ADD COLUMN direction TEXT NOT NULL DEFAULT 'inbound'
    CHECK (direction IN ('inbound', 'outbound'));
ALTER TABLE calls ADD COLUMN agent_answered INTEGER NOT NULL DEFAULT 1
    CHECK (agent_answered IN (0, 1));
ALTER TABLE calls ADD COLUMN customer_hung_up INTEGER NOT NULL DEFAULT 0
    CHECK (customer_hung_up IN (0, 1));
ALTER TABLE calls ADD COLUMN agent_hung_up INTEGER NOT NULL DEFAULT 0
    CHECK (agent_hung_up IN (0, 1));
ALTER TABLE calls ADD COLUMN deleted_at_ms INTEGER;
-- The media legs as the API shows them (local and remote addresses, codec, final statistics):
-- a JSON object shaped by the control plane; the store only requires valid JSON.
ALTER TABLE calls ADD COLUMN media TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(media));

-- The supervisor's leg and options, as the API shows them (JSON shaped by the control plane).
ALTER TABLE supervisions ADD COLUMN media TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(media));

-- An alert names its call (a supervision may outlive it) and says why, in words.
ALTER TABLE alerts ADD COLUMN call_id TEXT;
ALTER TABLE alerts ADD COLUMN reason TEXT;
