-- Events of the streams a projection has parked under the "park" error policy, in log order: the
-- event whose failure parked its stream (error set), and the later events of that stream parked
-- behind it (error NULL). A stream is parked while it has rows here; resuming it replays them in
-- order and deletes them, skipping it moves them to projector_dead_letters.
CREATE TABLE IF NOT EXISTS projector_parked (
    projection       text        NOT NULL,
    stream           text        NOT NULL,
    commit_position  bigint      NOT NULL,
    prepare_position bigint      NOT NULL,
    event_id         text        NOT NULL,
    event_type       text        NOT NULL,
    revision         bigint      NOT NULL,
    content_type     text        NOT NULL,
    data             bytea       NOT NULL,
    metadata         bytea       NOT NULL,
    created          timestamptz NOT NULL,
    error            text,
    parked_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, stream, commit_position, prepare_position)
);
