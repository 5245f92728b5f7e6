-- 0005 (PostgreSQL only): dw_apply_prepared, dw_apply with statements that are planned once
-- per connection instead of once per call.
--
-- dw_apply (0004) runs each statement as dynamic SQL, so PostgreSQL parses, analyses and plans
-- every statement of every write; that was a third of PostgreSQL's CPU. This function runs
-- session-level prepared statements instead. dw_apply stays: a node of the previous release
-- keeps calling it during a rolling upgrade.
--
-- The contract is dw_apply's plus, per statement, the name of its prepared statement
-- (``names``) and the SQL text to PREPARE under that name (``texts``; NULL when the caller
-- knows the connection has it). The arguments travel in fewer, larger values than dw_apply's
-- arrays (the driver's cost is per array element): ``modes`` is one string with a letter per
-- statement, ``args`` holds per statement one JSON array of its argument texts, and
-- ``events`` is one JSON array of [run_id, slot, back, event_id, event_type, payload,
-- recorded_at, workflow_task_id] rows. The caller names a
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
-- A statement is prepared as ``PREPARE name(jsonb) AS <sql reading ($1->>k)>`` and run as
-- ``EXECUTE name('<its JSON array of arguments>')``: a utility EXECUTE cannot take its
-- argument through USING. A utility statement leaves ROW_COUNT at 0, so statements of mode
-- 'c' end in RETURNING (or are a SELECT) and "touched no row" is "returned no value".
CREATE FUNCTION dw_apply_prepared(
    names TEXT[],
    texts TEXT[],
    modes TEXT,
    args TEXT[],
    events TEXT
) RETURNS BIGINT[]
LANGUAGE plpgsql AS $$
DECLARE
    lasts BIGINT[] := '{}';
    got BIGINT;
    mode TEXT;
    n INT := coalesce(array_length(names, 1), 0);
BEGIN
    FOR i IN 1 .. n LOOP
        IF texts[i] IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM pg_prepared_statements p WHERE p.name = names[i]) THEN
            EXECUTE format('PREPARE %I(jsonb) AS %s', names[i], texts[i]);
        END IF;
    END LOOP;
    FOR i IN 1 .. n LOOP
        mode := substr(modes, i, 1);
        IF mode = 'x' THEN
            EXECUTE format('EXECUTE %I(%L)', names[i], args[i]);
        ELSE
            got := NULL;
            EXECUTE format('EXECUTE %I(%L)', names[i], args[i]) INTO got;
            IF got IS NULL THEN
                RAISE EXCEPTION USING ERRCODE = 'DW001', MESSAGE = i::TEXT;
            END IF;
            IF mode = 'r' THEN
                lasts := lasts || got;
            END IF;
        END IF;
    END LOOP;
    IF events IS NOT NULL THEN
        INSERT INTO history_events (run_id, sequence, event_id, event_type, payload, recorded_at, workflow_task_id)
        SELECT e->>0, lasts[(e->>1)::int] - (e->>2)::bigint, e->>3, e->>4, e->>5, (e->>6)::double precision, e->>7
        FROM jsonb_array_elements(events::jsonb) AS e;
    END IF;
    RETURN lasts;
END
$$;
