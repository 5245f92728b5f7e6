-- 0001: the initial schema, the PostgreSQL twin of sqlite/migrations/0001_initial.sql (same
-- tables, columns, keys and indexes; a test compares both with the row classes).
-- Times are DOUBLE PRECISION seconds since the epoch (UTC), like SQLite's REAL, so the engine
-- sees the same floats on both backends. JSON columns hold orjson text rather than jsonb: the
-- database never looks inside them, and text skips jsonb's parse on every write and read.

CREATE TABLE namespaces (
    name TEXT PRIMARY KEY,
    description TEXT,
    created_at DOUBLE PRECISION NOT NULL
);

-- Workflow ids are global (control-plane §4): one row per id, whatever the namespace.
CREATE TABLE workflows (
    workflow_id TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    workflow_type TEXT NOT NULL,
    current_run_id TEXT NOT NULL,
    run_count BIGINT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE runs (
    run_id TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    run_number BIGINT NOT NULL,
    workflow_type TEXT NOT NULL,
    task_queue TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at DOUBLE PRECISION NOT NULL,
    input TEXT,
    output TEXT,
    failure TEXT,
    closed_reason TEXT,
    business_key TEXT,
    memo TEXT NOT NULL,
    search_attributes TEXT NOT NULL,
    compatibility TEXT,
    execution_timeout_seconds BIGINT,
    run_timeout_seconds BIGINT,
    execution_deadline_at DOUBLE PRECISION,
    run_deadline_at DOUBLE PRECISION,
    closed_at DOUBLE PRECISION,
    last_progress_at DOUBLE PRECISION,
    last_history_sequence BIGINT NOT NULL,
    next_workflow_sequence BIGINT NOT NULL,
    wait_kind TEXT,
    wake_pending BOOLEAN NOT NULL,
    pending_resume TEXT,
    continued_from_run_id TEXT,
    continued_to_run_id TEXT,
    version BIGINT NOT NULL
);
CREATE INDEX runs_by_workflow ON runs (workflow_id, run_number);
CREATE INDEX runs_newest ON runs (namespace, started_at DESC, run_id DESC);

CREATE TABLE history_events (
    run_id TEXT NOT NULL,
    sequence BIGINT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    recorded_at DOUBLE PRECISION NOT NULL,
    workflow_task_id TEXT,
    PRIMARY KEY (run_id, sequence)
);

CREATE TABLE workflow_tasks (
    task_id TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    run_id TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    workflow_type TEXT NOT NULL,
    task_queue TEXT NOT NULL,
    status TEXT NOT NULL,
    available_at DOUBLE PRECISION NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    attempt BIGINT NOT NULL,
    lease_owner TEXT,
    lease_expires_at DOUBLE PRECISION,
    history_cap BIGINT,
    compatibility TEXT,
    resume TEXT NOT NULL,
    failure_count BIGINT NOT NULL,
    last_failure TEXT,
    outcome TEXT
);
-- Claims read ready tasks by available_at and leased ones by lease expiry; both partial
-- indexes stay small because finished tasks leave them.
CREATE INDEX workflow_tasks_ready ON workflow_tasks (namespace, task_queue, available_at)
    WHERE status = 'ready';
CREATE INDEX workflow_tasks_leased ON workflow_tasks (namespace, task_queue, lease_expires_at)
    WHERE status = 'leased';
CREATE INDEX workflow_tasks_by_run ON workflow_tasks (run_id, status);
-- At most one open workflow task per run, enforced by the database as a last line of defence.
CREATE UNIQUE INDEX workflow_tasks_one_open ON workflow_tasks (run_id) WHERE status IN ('ready', 'leased');
CREATE INDEX workflow_tasks_by_owner ON workflow_tasks (namespace, lease_owner) WHERE status = 'leased';

CREATE TABLE activity_executions (
    activity_execution_id TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    run_id TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    sequence BIGINT NOT NULL,
    activity_type TEXT NOT NULL,
    task_queue TEXT NOT NULL,
    status TEXT NOT NULL,
    scheduled_at DOUBLE PRECISION NOT NULL,
    retry_policy TEXT NOT NULL,
    arguments TEXT,
    attempt_number BIGINT NOT NULL,
    current_task_id TEXT,
    schedule_to_close_deadline DOUBLE PRECISION,
    heartbeat_details TEXT,
    last_failure TEXT,
    parallel TEXT NOT NULL,
    closed_at DOUBLE PRECISION
);
CREATE INDEX activity_executions_by_run ON activity_executions (run_id, status);

CREATE TABLE activity_tasks (
    task_id TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    activity_execution_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    activity_type TEXT NOT NULL,
    task_queue TEXT NOT NULL,
    status TEXT NOT NULL,
    attempt_number BIGINT NOT NULL,
    available_at DOUBLE PRECISION NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    attempt_id TEXT,
    lease_owner TEXT,
    lease_expires_at DOUBLE PRECISION,
    started_at DOUBLE PRECISION,
    last_heartbeat_at DOUBLE PRECISION,
    outcome TEXT
);
CREATE INDEX activity_tasks_ready ON activity_tasks (namespace, task_queue, available_at)
    WHERE status = 'ready';
CREATE UNIQUE INDEX activity_tasks_by_attempt ON activity_tasks (attempt_id) WHERE attempt_id IS NOT NULL;
CREATE INDEX activity_tasks_by_run ON activity_tasks (run_id, status);

-- Every durable deadline: user timers, activity timeouts, run deadlines.
CREATE TABLE timers (
    timer_id TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    run_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    fire_at DOUBLE PRECISION NOT NULL,
    status TEXT NOT NULL,
    ref_id TEXT,
    data TEXT NOT NULL
);
CREATE INDEX timers_due ON timers (fire_at) WHERE status = 'pending';
CREATE INDEX timers_by_run ON timers (run_id, status);

CREATE TABLE workers (
    namespace TEXT NOT NULL,
    worker_id TEXT NOT NULL,
    task_queue TEXT NOT NULL,
    runtime TEXT NOT NULL,
    status TEXT NOT NULL,
    registered_at DOUBLE PRECISION NOT NULL,
    last_heartbeat_at DOUBLE PRECISION NOT NULL,
    build_id TEXT,
    supported_workflow_types TEXT NOT NULL,
    supported_activity_types TEXT NOT NULL,
    fingerprints TEXT NOT NULL,
    max_concurrent_workflow_tasks BIGINT NOT NULL,
    max_concurrent_activity_tasks BIGINT NOT NULL,
    details TEXT NOT NULL,
    PRIMARY KEY (namespace, worker_id)
);

INSERT INTO namespaces (name, description, created_at)
VALUES ('default', 'Seeded at bootstrap', EXTRACT(EPOCH FROM now())::DOUBLE PRECISION);
