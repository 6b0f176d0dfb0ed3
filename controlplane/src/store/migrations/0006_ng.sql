-- earshot schema, version 6: calls anchored over the NG protocol (docs/ng.md).
--
-- An NG call is a call like any other (its row in `calls`); this table adds what the NG
-- adapter names it by: the softswitch's call-id (SIP Call-ID) and the two parties' tags, with
-- the party the offerer is (the answerer is the other). A call-id is not unique over time: a
-- softswitch may reuse one after the call was deleted, so it is indexed, not a key.

CREATE TABLE ng_calls (
    call_id        TEXT PRIMARY KEY REFERENCES calls (id),
    ng_call_id     TEXT NOT NULL,
    offerer_tag    TEXT NOT NULL,
    offerer        TEXT NOT NULL CHECK (offerer IN ('customer', 'agent')),
    answerer_tag   TEXT,
    last_signal_ms INTEGER NOT NULL
);
CREATE INDEX ng_calls_by_ng_call_id ON ng_calls (ng_call_id);
