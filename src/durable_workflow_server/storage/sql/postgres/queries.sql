-- Named queries of the PostgreSQL backend, loaded once by name (``-- name: <name>``).
-- Parameters are written ``:name`` and turned into asyncpg's ``$n`` when loaded.
-- Writes are not here: _pg_apply.py compiles each mutation into one dw_apply call (0004).

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
SELECT LEAST(
    (SELECT MIN(available_at) FROM workflow_tasks
     WHERE namespace = :namespace AND task_queue = :task_queue AND status = 'ready'),
    (SELECT MIN(lease_expires_at) FROM workflow_tasks
     WHERE namespace = :namespace AND task_queue = :task_queue AND status = 'leased')
);

-- name: next_available_activity
SELECT MIN(available_at) FROM activity_tasks
WHERE namespace = :namespace AND task_queue = :task_queue AND status = 'ready';

-- name: get_worker
SELECT * FROM workers WHERE namespace = :namespace AND worker_id = :worker_id;

-- Claims take ONE candidate row lock at a time with SKIP LOCKED: each concurrent poller (on
-- any node) gets a different task instead of queueing behind the first one's lock, and a
-- poller never holds locks on tasks it will not take. The first try is a dw_claim_* function
-- (migration 0004); these queries serve the second, when the candidate's run was busy: the
-- run is locked first (waiting), then the same task again if it is still claimable.

-- name: relock_workflow_task
SELECT * FROM workflow_tasks
WHERE task_id = :task_id
  AND ((status = 'ready' AND available_at <= :now) OR (status = 'leased' AND lease_expires_at <= :now))
FOR UPDATE SKIP LOCKED;

-- name: relock_activity_task
SELECT * FROM activity_tasks
WHERE task_id = :task_id AND status = 'ready' AND available_at <= :now
FOR UPDATE SKIP LOCKED;

-- name: lock_run
SELECT * FROM runs WHERE run_id = :run_id FOR UPDATE;

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
