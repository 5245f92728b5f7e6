-- 0003: child workflows, cooperative cancellation and the visibility index.

-- A run started by a parent's start_child_workflow command knows its link (child_workflows).
ALTER TABLE runs ADD COLUMN parent_run_id TEXT;
ALTER TABLE runs ADD COLUMN parent_workflow_id TEXT;
ALTER TABLE runs ADD COLUMN child_link_id TEXT;
-- Set by a cancel request; the run stays open until its workflow code finishes.
ALTER TABLE runs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;

-- One row per started child (all attempts and continue-as-new runs of it).
CREATE TABLE child_workflows (
    link_id TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    parent_run_id TEXT NOT NULL,
    parent_workflow_id TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    child_workflow_id TEXT NOT NULL,
    child_run_id TEXT NOT NULL,
    workflow_type TEXT NOT NULL,
    task_queue TEXT NOT NULL,
    parent_close_policy TEXT NOT NULL,
    status TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    retry_policy TEXT NOT NULL,
    arguments TEXT,
    execution_timeout_seconds INTEGER,
    run_timeout_seconds INTEGER,
    parallel TEXT NOT NULL,
    created_at REAL NOT NULL,
    closed_at REAL
);
CREATE INDEX child_workflows_by_parent ON child_workflows (parent_run_id, status);

-- Registered custom search attributes (control-plane §8); status 'deleted' frees a name.
CREATE TABLE search_attribute_defs (
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (namespace, name)
);

-- Typed values of each run's custom search attributes, one row per value (list items get a
-- position each). A changed or deleted attribute marks its old rows live = 0 instead of
-- deleting them, so every write stays an insert or an update.
CREATE TABLE search_attributes (
    run_id TEXT NOT NULL,
    name TEXT NOT NULL,
    position INTEGER NOT NULL,
    namespace TEXT NOT NULL,
    live INTEGER NOT NULL,
    text_value TEXT,
    int_value INTEGER,
    double_value REAL,
    time_value REAL,
    PRIMARY KEY (run_id, name, position)
);
CREATE INDEX search_attributes_text ON search_attributes (namespace, name, text_value) WHERE live = 1;
CREATE INDEX search_attributes_int ON search_attributes (namespace, name, int_value) WHERE live = 1;
CREATE INDEX search_attributes_double ON search_attributes (namespace, name, double_value) WHERE live = 1;
CREATE INDEX search_attributes_time ON search_attributes (namespace, name, time_value) WHERE live = 1;
