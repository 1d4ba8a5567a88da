-- The time a dead letter was written is when its event failed: name it so.
ALTER TABLE projector_dead_letters RENAME COLUMN dead_at TO failed_at;
