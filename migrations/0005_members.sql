-- The replicas of a scale-out group, one row per running daemon, so they share the projections'
-- leases about evenly (see views/postgres.Balancer). A daemon inserts its row when it starts,
-- updates heartbeat_at about every second, and deletes the row when it stops cleanly; a row whose
-- heartbeat is older than the member timeout is a dead member, ignored and eventually deleted.
-- projections: the projections the member runs; leads: those it led at its last heartbeat;
-- wants: those assigned to it that it was waiting to lead (a leader hands a projection over only
-- to a member that wants it).
CREATE TABLE IF NOT EXISTS projector_members (
    member_id    text        PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    projections  text[]      NOT NULL DEFAULT '{}',
    leads        text[]      NOT NULL DEFAULT '{}',
    wants        text[]      NOT NULL DEFAULT '{}'
);
