-- 0002: signals, updates and condition waits of a run (the "messages" of a workflow).
--
-- A signal row exists only when the caller sent a request_id (its receipt, for idempotency);
-- an update row holds the update's life (requested -> accepted/running -> completed | failed,
-- or rejected by its validator); a condition_wait row is an open or closed wait_condition.
CREATE TABLE workflow_messages (
    message_id TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    fingerprint TEXT,
    arguments TEXT,
    data TEXT NOT NULL
);

CREATE INDEX workflow_messages_by_run ON workflow_messages (run_id, kind, status, created_at);
