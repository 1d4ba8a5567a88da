-- Events a projection skipped under the "skip" error policy, with the error they caused.
CREATE TABLE IF NOT EXISTS projector_dead_letters (
    id               bigserial   PRIMARY KEY,
    projection       text        NOT NULL,
    event_id         text        NOT NULL,
    event_type       text        NOT NULL,
    stream           text        NOT NULL,
    revision         bigint      NOT NULL,
    commit_position  bigint      NOT NULL,
    prepare_position bigint      NOT NULL,
    content_type     text        NOT NULL,
    data             bytea       NOT NULL,
    metadata         bytea       NOT NULL,
    created          timestamptz NOT NULL,
    error            text        NOT NULL,
    dead_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS projector_dead_letters_projection ON projector_dead_letters (projection, commit_position);
