-- The versions of each declarative projection: its definition (a fingerprint and the SQL it is
-- made of), and whether it is serving the live tables, building in a shadow schema, or archived
-- (its tables kept in an archive schema for a rollback).
CREATE TABLE IF NOT EXISTS projector_versions (
    projection text        NOT NULL,
    version    text        NOT NULL,
    definition jsonb       NOT NULL,
    state      text        NOT NULL CHECK (state IN ('serving', 'building', 'archived')),
    created_at timestamptz NOT NULL DEFAULT now(),
    swapped_at timestamptz,
    PRIMARY KEY (projection, version)
);
CREATE UNIQUE INDEX IF NOT EXISTS projector_versions_serving ON projector_versions (projection) WHERE state = 'serving';
CREATE UNIQUE INDEX IF NOT EXISTS projector_versions_building ON projector_versions (projection) WHERE state = 'building';

-- projector_check_version fails (SQLSTATE PJ001) unless version v of projection p is in state
-- want. Every batch of a versioned projection runs it before its tracking advance, holding the
-- row until it commits, so a process running another version never commits to the tables of
-- the version that serves.
CREATE OR REPLACE FUNCTION projector_check_version(p text, v text, want text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    current text;
BEGIN
    SELECT version INTO current FROM projector_versions WHERE projection = p AND state = want FOR SHARE;
    IF current IS DISTINCT FROM v THEN
        RAISE EXCEPTION 'projection % runs version %, but the version % is %', p, v, coalesce(current, '(none)'), want
            USING ERRCODE = 'PJ001';
    END IF;
END
$$;
