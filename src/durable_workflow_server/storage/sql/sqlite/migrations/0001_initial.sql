-- 0001: the initial schema. Times are REAL seconds since the epoch (UTC); JSON columns hold
-- orjson text; payload blobs are opaque base64 text the server never decodes.

CREATE TABLE namespaces (
    name TEXT PRIMARY KEY,
    description TEXT,
    created_at REAL NOT NULL
);

-- Workflow ids are global (control-plane §4): one row per id, whatever the namespace.
CREATE TABLE workflows (
    workflow_id TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    workflow_type TEXT NOT NULL,
    current_run_id TEXT NOT NULL,
    run_count INTEGER NOT NULL,
    created_at REAL NOT NULL
);

CREATE TABLE runs (
    run_id TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    run_number INTEGER NOT NULL,
    workflow_type TEXT NOT NULL,
    task_queue TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at REAL NOT NULL,
    input TEXT,
    output TEXT,
    failure TEXT,
    closed_reason TEXT,
    business_key TEXT,
    memo TEXT NOT NULL,
    search_attributes TEXT NOT NULL,
    compatibility TEXT,
    execution_timeout_seconds INTEGER,
    run_timeout_seconds INTEGER,
    execution_deadline_at REAL,
    run_deadline_at REAL,
    closed_at REAL,
    last_progress_at REAL,
    last_history_sequence INTEGER NOT NULL,
    next_workflow_sequence INTEGER NOT NULL,
    wait_kind TEXT,
    wake_pending INTEGER NOT NULL,
    pending_resume TEXT,
    continued_from_run_id TEXT,
    continued_to_run_id TEXT,
    version INTEGER NOT NULL
);
CREATE INDEX runs_by_workflow ON runs (workflow_id, run_number);
CREATE INDEX runs_newest ON runs (namespace, started_at DESC, run_id DESC);

CREATE TABLE history_events (
    run_id TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    recorded_at REAL NOT NULL,
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
    available_at REAL NOT NULL,
    created_at REAL NOT NULL,
    attempt INTEGER NOT NULL,
    lease_owner TEXT,
    lease_expires_at REAL,
    history_cap INTEGER,
    compatibility TEXT,
    resume TEXT NOT NULL,
    failure_count INTEGER NOT NULL,
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
    sequence INTEGER NOT NULL,
    activity_type TEXT NOT NULL,
    task_queue TEXT NOT NULL,
    status TEXT NOT NULL,
    scheduled_at REAL NOT NULL,
    retry_policy TEXT NOT NULL,
    arguments TEXT,
    attempt_number INTEGER NOT NULL,
    current_task_id TEXT,
    schedule_to_close_deadline REAL,
    heartbeat_details TEXT,
    last_failure TEXT,
    parallel TEXT NOT NULL,
    closed_at REAL
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
    attempt_number INTEGER NOT NULL,
    available_at REAL NOT NULL,
    created_at REAL NOT NULL,
    attempt_id TEXT,
    lease_owner TEXT,
    lease_expires_at REAL,
    started_at REAL,
    last_heartbeat_at REAL,
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
    fire_at REAL NOT NULL,
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
    registered_at REAL NOT NULL,
    last_heartbeat_at REAL NOT NULL,
    build_id TEXT,
    supported_workflow_types TEXT NOT NULL,
    supported_activity_types TEXT NOT NULL,
    fingerprints TEXT NOT NULL,
    max_concurrent_workflow_tasks INTEGER NOT NULL,
    max_concurrent_activity_tasks INTEGER NOT NULL,
    details TEXT NOT NULL,
    PRIMARY KEY (namespace, worker_id)
);

INSERT INTO namespaces (name, description, created_at)
VALUES ('default', 'Seeded at bootstrap', CAST(strftime('%s', 'now') AS REAL));
