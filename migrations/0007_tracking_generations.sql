-- The generation of each projection's tracking: 0 until its first rewind, then one more at each
-- rewind, reset or swap of versions, the changes that can move its position back. Waiters
-- compare states by generation first, so a notification committed before a rewind but seen
-- after it never brings the old position back. Kept apart from projector_tracking because a
-- rewind to the start deletes the projection's tracking row, and its generation must outlive it.
CREATE TABLE IF NOT EXISTS projector_tracking_generations (
    projection text   PRIMARY KEY,
    generation bigint NOT NULL CHECK (generation > 0)
);
