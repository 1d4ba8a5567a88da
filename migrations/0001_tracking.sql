-- One row per projection: how far it has got in the KurrentDB $all log.
-- commit_position/prepare_position: the last event processed (inclusive; 0 when none).
-- checkpoint_position: the last server checkpoint past that event (exclusive; 0 when none).
-- Kept apart because a checkpoint may be the position of an event not yet written
-- (KurrentDB #4970): everything strictly before it is done, the event at it is not.
CREATE TABLE IF NOT EXISTS projector_tracking (
    projection          text        PRIMARY KEY,
    commit_position     bigint      NOT NULL DEFAULT 0 CHECK (commit_position >= 0),
    prepare_position    bigint      NOT NULL DEFAULT 0 CHECK (prepare_position >= 0),
    checkpoint_position bigint      NOT NULL DEFAULT 0 CHECK (checkpoint_position >= 0),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
