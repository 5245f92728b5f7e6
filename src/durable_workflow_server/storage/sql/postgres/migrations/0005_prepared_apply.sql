-- 0005 (PostgreSQL only): dw_apply_prepared, dw_apply with statements that are planned once
-- per connection instead of once per call.
--
-- dw_apply (0004) runs each statement as dynamic SQL, so PostgreSQL parses, analyses and plans
-- every statement of every write; that was a third of PostgreSQL's CPU. This function runs
-- session-level prepared statements instead. dw_apply stays: a node of the previous release
-- keeps calling it during a rolling upgrade.
--
-- The contract is dw_apply's (modes, bounds, args and events mean the same) plus, per
-- statement, the name of its prepared statement (``names``) and the SQL text to PREPARE under
-- that name (``texts``; NULL when the caller knows the connection has it). The caller names a
-- statement after its text, so a name always stands for the same text. Every text is prepared
-- before the first statement runs, and only when the session lacks that name: a caller that
-- lost track of what its connection holds sends the texts again and they are skipped. PREPARE
-- is session state, not transactional: a failed call keeps what it prepared.
--
-- Unlike dw_apply it sends no NOTIFY: a transaction that notifies holds PostgreSQL's
-- notification-queue lock from its pre-commit through its WAL flush, so every notifying write
-- of every node commits one after the other. Nodes announce their wake-ups after the commit
-- instead, batched, on a connection of their own (storage/_pg_listen.py).
--
-- A statement is prepared as ``PREPARE name(text[]) AS <sql reading $1[k]>`` and run as
-- ``EXECUTE name('<its slice of args as an array literal>')``: a utility EXECUTE cannot take
-- its argument through USING. A utility statement leaves ROW_COUNT at 0, so statements of mode
-- 'c' end in RETURNING (or are a SELECT) and "touched no row" is "returned no value".
CREATE FUNCTION dw_apply_prepared(
    names TEXT[],
    texts TEXT[],
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
    ev_task TEXT[]
) RETURNS BIGINT[]
LANGUAGE plpgsql AS $$
DECLARE
    lasts BIGINT[] := '{}';
    got BIGINT;
    n INT := coalesce(array_length(names, 1), 0);
BEGIN
    FOR i IN 1 .. n LOOP
        IF texts[i] IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM pg_prepared_statements p WHERE p.name = names[i]) THEN
            EXECUTE format('PREPARE %I(text[]) AS %s', names[i], texts[i]);
        END IF;
    END LOOP;
    FOR i IN 1 .. n LOOP
        IF modes[i] = 'x' THEN
            EXECUTE format('EXECUTE %I(%L)', names[i], args[bounds[i] + 1 : bounds[i + 1]]);
        ELSE
            got := NULL;
            EXECUTE format('EXECUTE %I(%L)', names[i], args[bounds[i] + 1 : bounds[i + 1]]) INTO got;
            IF got IS NULL THEN
                RAISE EXCEPTION USING ERRCODE = 'DW001', MESSAGE = i::TEXT;
            END IF;
            IF modes[i] = 'r' THEN
                lasts := lasts || got;
            END IF;
        END IF;
    END LOOP;
    IF coalesce(array_length(ev_run, 1), 0) > 0 THEN
        INSERT INTO history_events (run_id, sequence, event_id, event_type, payload, recorded_at, workflow_task_id)
        SELECT e.run_id, lasts[e.slot] - e.back, e.event_id, e.event_type, e.payload, e.recorded_at, e.task_id
        FROM unnest(ev_run, ev_slot, ev_back, ev_id, ev_type, ev_payload, ev_at, ev_task)
            AS e(run_id, slot, back, event_id, event_type, payload, recorded_at, task_id);
    END IF;
    RETURN lasts;
END
$$;
