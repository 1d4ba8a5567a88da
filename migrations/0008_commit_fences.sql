-- The checks a batch makes before it commits, as functions that fail instead of answering, so
-- that a batch can send them and its COMMIT in one round trip: when one fails, PostgreSQL skips
-- the COMMIT after it and the batch rolls back.

-- projector_require_lock fails (SQLSTATE PJ003) unless backend b holds the session advisory lock
-- whose key halves are k1 and k2 in the current database: a leader's batch commits only while
-- its lock connection still holds the projection's lock.
CREATE OR REPLACE FUNCTION projector_require_lock(k1 bigint, k2 bigint, b bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_locks
        WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND classid = k1::oid AND objid = k2::oid AND objsubid = 1 AND pid = b AND granted) THEN
        RAISE EXCEPTION 'backend % no longer holds advisory lock (%, %)', b, k1, k2 USING ERRCODE = 'PJ003';
    END IF;
END
$$;

-- projector_advance moves the tracking row of projection p from (prev_c, prev_pr, prev_ck) to
-- (c, pr, ck): commit, prepare and checkpoint positions. From all zeros it creates the row (or
-- moves a row left at zeros). It fails (SQLSTATE PJ002) when the row is elsewhere: another
-- process has moved it, and the batch must not commit.
CREATE OR REPLACE FUNCTION projector_advance(p text, c bigint, pr bigint, ck bigint, prev_c bigint, prev_pr bigint, prev_ck bigint)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF prev_c = 0 AND prev_pr = 0 AND prev_ck = 0 THEN
        INSERT INTO projector_tracking AS t (projection, commit_position, prepare_position, checkpoint_position, updated_at)
        VALUES (p, c, pr, ck, now())
        ON CONFLICT (projection) DO UPDATE SET commit_position = c, prepare_position = pr, checkpoint_position = ck, updated_at = now()
        WHERE t.commit_position = 0 AND t.prepare_position = 0 AND t.checkpoint_position = 0;
    ELSE
        UPDATE projector_tracking SET commit_position = c, prepare_position = pr, checkpoint_position = ck, updated_at = now()
        WHERE projection = p AND commit_position = prev_c AND prepare_position = prev_pr AND checkpoint_position = prev_ck;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the tracking of % is not at (%, %, %)', p, prev_c, prev_pr, prev_ck USING ERRCODE = 'PJ002';
    END IF;
END
$$;
