-- 0004 (PostgreSQL only): server-side functions that make a write transaction one round trip.
--
-- dw_apply runs one whole Mutation (storage/_pg_apply.py compiles it): its preconditions and
-- row operations as statements in order, then its history events, then its NOTIFYs. Called
-- on its own (autocommit) it is the whole transaction: no BEGIN and COMMIT round trips, and
-- the NOTIFYs are delivered with the commit as before. Called inside a claim's transaction it
-- only saves the per-statement round trips.
--
-- Each statement gets its own slice of ``args`` as $1 (text[]; the SQL casts what it reads).
-- ``modes`` says what the statement must do:
--   'x' nothing more;
--   'c' touch at least one row (a precondition, or an INSERT … ON CONFLICT DO NOTHING that
--       must insert);
--   'r' return one value (a run's last_history_sequence once its events are reserved),
--       appended to the result, which the events then refer to by position (``ev_slot``).
-- A statement that does not do so raises SQLSTATE DW001 with its index (1-based) as the
-- message; the caller maps it back to the precondition that failed. The error aborts the
-- transaction, so nothing of the mutation is written.
--
-- Event i of run r gets sequence result[ev_slot[i]] - ev_back[i] (ev_back counts the events
-- of the same run after it).
CREATE FUNCTION dw_apply(
    stmts TEXT[],
    modes TEXT[],
    bounds INT[],
    args TEXT[],
    ev_run TEXT[],
    ev_slot INT[],
    ev_back INT[],
    ev_id TEXT[],
    ev_type TEXT[],
    ev_payload TEXT[],
    ev_at DOUBLE PRECISION[],
    ev_task TEXT[],
    channel TEXT,
    notes TEXT[]
) RETURNS BIGINT[]
LANGUAGE plpgsql AS $$
DECLARE
    lasts BIGINT[] := '{}';
    last BIGINT;
    touched BIGINT;
BEGIN
    FOR i IN 1 .. coalesce(array_length(stmts, 1), 0) LOOP
        IF modes[i] = 'r' THEN
            last := NULL;
            EXECUTE stmts[i] INTO last USING args[bounds[i] + 1 : bounds[i + 1]];
            IF last IS NULL THEN
                RAISE EXCEPTION USING ERRCODE = 'DW001', MESSAGE = i::TEXT;
            END IF;
            lasts := lasts || last;
        ELSE
            EXECUTE stmts[i] USING args[bounds[i] + 1 : bounds[i + 1]];
            IF modes[i] = 'c' THEN
                GET DIAGNOSTICS touched = ROW_COUNT;
                IF touched = 0 THEN
                    RAISE EXCEPTION USING ERRCODE = 'DW001', MESSAGE = i::TEXT;
                END IF;
            END IF;
        END IF;
    END LOOP;
    IF coalesce(array_length(ev_run, 1), 0) > 0 THEN
        INSERT INTO history_events (run_id, sequence, event_id, event_type, payload, recorded_at, workflow_task_id)
        SELECT e.run_id, lasts[e.slot] - e.back, e.event_id, e.event_type, e.payload, e.recorded_at, e.task_id
        FROM unnest(ev_run, ev_slot, ev_back, ev_id, ev_type, ev_payload, ev_at, ev_task)
            AS e(run_id, slot, back, event_id, event_type, payload, recorded_at, task_id);
    END IF;
    IF coalesce(array_length(notes, 1), 0) > 0 THEN
        PERFORM pg_notify(channel, note) FROM unnest(notes) AS note;
    END IF;
    RETURN lasts;
END
$$;

-- Claims: pick the oldest eligible task with SKIP LOCKED and try its run's lock (SKIP LOCKED
-- too) in one round trip; see postgres.py for the lock order. ``run_state`` is 'locked' (the
-- run row is returned, locked), 'busy' (another transaction holds the run: the caller lets go
-- of the task and takes the locks again run first) or 'missing'.
CREATE FUNCTION dw_claim_workflow_task(
    p_namespace TEXT,
    p_task_queue TEXT,
    p_now DOUBLE PRECISION,
    p_types TEXT[],
    p_build_id TEXT,
    p_excluded TEXT[]
) RETURNS TABLE (task workflow_tasks, run runs, run_state TEXT)
LANGUAGE plpgsql AS $$
BEGIN
    SELECT * INTO task FROM workflow_tasks t
    WHERE t.namespace = p_namespace AND t.task_queue = p_task_queue AND t.status = 'ready'
      AND t.available_at <= p_now
      AND (cardinality(p_types) = 0 OR t.workflow_type = ANY(p_types))
      AND (p_build_id IS NULL OR t.compatibility IS NULL OR t.compatibility = p_build_id)
      AND NOT (t.task_id = ANY(p_excluded))
    ORDER BY t.available_at
    LIMIT 1
    FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        SELECT * INTO task FROM workflow_tasks t
        WHERE t.namespace = p_namespace AND t.task_queue = p_task_queue AND t.status = 'leased'
          AND t.lease_expires_at <= p_now
          AND (cardinality(p_types) = 0 OR t.workflow_type = ANY(p_types))
          AND (p_build_id IS NULL OR t.compatibility IS NULL OR t.compatibility = p_build_id)
          AND NOT (t.task_id = ANY(p_excluded))
        ORDER BY t.lease_expires_at
        LIMIT 1
        FOR UPDATE SKIP LOCKED;
        IF NOT FOUND THEN
            RETURN;
        END IF;
    END IF;
    SELECT * INTO run FROM runs r WHERE r.run_id = (task).run_id FOR UPDATE SKIP LOCKED;
    IF FOUND THEN
        run_state := 'locked';
    ELSIF EXISTS (SELECT 1 FROM runs r WHERE r.run_id = (task).run_id) THEN
        run_state := 'busy';
    ELSE
        run_state := 'missing';
    END IF;
    RETURN NEXT;
END
$$;

-- The activity twin: the task, the state of its run's lock (the run row itself is not
-- needed) and the activity execution it belongs to (read, not locked: the run lock covers it).
CREATE FUNCTION dw_claim_activity_task(
    p_namespace TEXT,
    p_task_queue TEXT,
    p_now DOUBLE PRECISION,
    p_types TEXT[],
    p_excluded TEXT[]
) RETURNS TABLE (task activity_tasks, activity activity_executions, run_state TEXT)
LANGUAGE plpgsql AS $$
BEGIN
    SELECT * INTO task FROM activity_tasks t
    WHERE t.namespace = p_namespace AND t.task_queue = p_task_queue AND t.status = 'ready'
      AND t.available_at <= p_now
      AND (cardinality(p_types) = 0 OR t.activity_type = ANY(p_types))
      AND NOT (t.task_id = ANY(p_excluded))
    ORDER BY t.available_at
    LIMIT 1
    FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    PERFORM 1 FROM runs r WHERE r.run_id = (task).run_id FOR UPDATE SKIP LOCKED;
    IF FOUND THEN
        run_state := 'locked';
        SELECT * INTO activity FROM activity_executions a
        WHERE a.activity_execution_id = (task).activity_execution_id;
    ELSIF EXISTS (SELECT 1 FROM runs r WHERE r.run_id = (task).run_id) THEN
        run_state := 'busy';
    ELSE
        run_state := 'missing';
    END IF;
    RETURN NEXT;
END
$$;
