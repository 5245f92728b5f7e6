-- Named queries of the SQLite backend, loaded once by name (``-- name: <name>``).
-- Row writes (insert, replace, patch) are generated from the row dataclasses instead.

-- name: namespace_exists
SELECT 1 FROM namespaces WHERE name = :namespace;

-- name: get_workflow
SELECT * FROM workflows WHERE workflow_id = :workflow_id;

-- name: get_run
SELECT * FROM runs WHERE run_id = :run_id;

-- name: runs_of
SELECT * FROM runs WHERE workflow_id = :workflow_id ORDER BY run_number;

-- name: history
SELECT * FROM history_events WHERE run_id = :run_id AND sequence > :after ORDER BY sequence LIMIT :limit;

-- name: get_workflow_task
SELECT * FROM workflow_tasks WHERE task_id = :task_id;

-- name: open_workflow_task
SELECT * FROM workflow_tasks WHERE run_id = :run_id AND status IN ('ready', 'leased')
ORDER BY created_at DESC LIMIT 1;

-- name: leased_workflow_tasks
SELECT * FROM workflow_tasks WHERE namespace = :namespace AND lease_owner = :worker_id AND status = 'leased';

-- name: get_activity
SELECT * FROM activity_executions WHERE activity_execution_id = :activity_execution_id;

-- name: open_activities
SELECT * FROM activity_executions WHERE run_id = :run_id AND status IN ('scheduled', 'started')
ORDER BY sequence;

-- name: get_activity_task
SELECT * FROM activity_tasks WHERE task_id = :task_id;

-- name: activity_task_by_attempt
SELECT * FROM activity_tasks WHERE attempt_id = :attempt_id;

-- name: get_timer
SELECT * FROM timers WHERE timer_id = :timer_id;

-- name: pending_timers
SELECT * FROM timers WHERE run_id = :run_id AND status = 'pending' ORDER BY fire_at;

-- name: due_timers
SELECT * FROM timers WHERE status = 'pending' AND fire_at <= :now ORDER BY fire_at LIMIT :limit;

-- name: next_timer_at
SELECT MIN(fire_at) FROM timers WHERE status = 'pending';

-- name: next_available_workflow
SELECT MIN(t) FROM (
    SELECT MIN(available_at) AS t FROM workflow_tasks
    WHERE namespace = :namespace AND task_queue = :task_queue AND status = 'ready'
    UNION ALL
    SELECT MIN(lease_expires_at) AS t FROM workflow_tasks
    WHERE namespace = :namespace AND task_queue = :task_queue AND status = 'leased'
);

-- name: next_available_activity
SELECT MIN(available_at) FROM activity_tasks
WHERE namespace = :namespace AND task_queue = :task_queue AND status = 'ready';

-- name: get_worker
SELECT * FROM workers WHERE namespace = :namespace AND worker_id = :worker_id;

-- name: workflow_claim_candidates
-- Two index range scans (ready ones first, then expired leases); an OR would scan the table.
SELECT * FROM (
    SELECT * FROM workflow_tasks
    WHERE namespace = :namespace AND task_queue = :task_queue AND status = 'ready' AND available_at <= :now
    ORDER BY available_at LIMIT :limit
)
UNION ALL
SELECT * FROM (
    SELECT * FROM workflow_tasks
    WHERE namespace = :namespace AND task_queue = :task_queue AND status = 'leased'
      AND lease_expires_at <= :now
    ORDER BY lease_expires_at LIMIT :limit
);

-- name: activity_claim_candidates
SELECT * FROM activity_tasks
WHERE namespace = :namespace AND task_queue = :task_queue AND status = 'ready' AND available_at <= :now
ORDER BY available_at LIMIT :limit;

-- name: fire_timer
UPDATE timers SET status = 'fired' WHERE timer_id = :timer_id AND status = 'pending' AND fire_at <= :now;

-- name: advance_run_sequence
-- Reserves :count sequences in one statement (instead of a read and a write); no row: no run.
UPDATE runs SET last_history_sequence = last_history_sequence + :count WHERE run_id = :run_id
RETURNING last_history_sequence;

-- name: insert_event
INSERT INTO history_events (run_id, sequence, event_id, event_type, payload, recorded_at, workflow_task_id)
VALUES (:run_id, :sequence, :event_id, :event_type, :payload, :recorded_at, :workflow_task_id);

-- name: get_child
SELECT * FROM child_workflows WHERE link_id = :link_id;

-- name: open_children
SELECT * FROM child_workflows WHERE parent_run_id = :parent_run_id AND status = 'open' ORDER BY sequence;

-- name: search_attribute_defs
SELECT * FROM search_attribute_defs WHERE namespace = :namespace ORDER BY name;

-- name: get_message
SELECT * FROM workflow_messages WHERE message_id = :message_id;

-- name: open_messages
SELECT * FROM workflow_messages
WHERE run_id = :run_id AND status IN ('open', 'requested', 'accepted', 'running')
ORDER BY created_at, message_id;

-- name: workers_on_queue
SELECT * FROM workers WHERE namespace = :namespace AND task_queue = :task_queue AND status = 'active';

-- name: count_open_activities
SELECT COUNT(*) FROM activity_executions
WHERE run_id = :run_id AND status IN ('scheduled', 'started') AND sequence BETWEEN :first AND :last
  AND activity_execution_id != :exclude;
