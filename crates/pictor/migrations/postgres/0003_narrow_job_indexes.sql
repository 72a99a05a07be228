-- Fewer index writes per job state change. On PostgreSQL a status change
-- writes a new row version, which every index of the table gets an entry
-- for: NULL dedupe keys and image ids now get none, and (status, type) is
-- gone (no query needs it: PENDING and RUNNING have their partial indexes,
-- FAILED gets one below, counts by status and type scan the pruned table).
ALTER TABLE job DROP CONSTRAINT job_dedupe_key_key;
CREATE UNIQUE INDEX job_dedupe_key ON job (dedupe_key) WHERE dedupe_key IS NOT NULL;
DROP INDEX job_image;
CREATE INDEX job_image ON job (image_id) WHERE image_id IS NOT NULL;
DROP INDEX job_status_type;
CREATE INDEX job_failed ON job (id) WHERE status = 'FAILED';
