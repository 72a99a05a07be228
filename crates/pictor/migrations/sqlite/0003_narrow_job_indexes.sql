-- The same indexes as PostgreSQL's 0003, except the dedupe key's: it stays
-- the column's UNIQUE constraint (dropping one means rebuilding the table),
-- and SQLite updates only the indexes whose columns a statement changes, so
-- a status change never touches it.
DROP INDEX job_image;
CREATE INDEX job_image ON job (image_id) WHERE image_id IS NOT NULL;
DROP INDEX job_status_type;
CREATE INDEX job_failed ON job (id) WHERE status = 'FAILED';
