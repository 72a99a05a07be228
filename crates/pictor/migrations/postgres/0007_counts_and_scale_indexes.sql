-- Reads whose cost does not grow with the library (issue 17).
--
-- Counts kept, not counted: job_count (per status and type) and image_count
-- (per collection, '' for none, and status) change in the very transaction
-- that inserts, updates or deletes rows, through statement triggers (one
-- grouped upsert per statement, however many rows it changed), so they are
-- exact whatever writes (the API, the runner, the rescuer, the pruner, an
-- operator's SQL). Each connection writes its own rows (slot = its backend
-- pid), so concurrent writers never wait on, or deadlock over, one counter
-- row; readers sum over the slots, and the pruner folds the slots of
-- connections that ended into its own (db::jobs::fold_counts).
CREATE TABLE job_count (
    status TEXT NOT NULL,
    type   TEXT NOT NULL,
    slot   BIGINT NOT NULL,
    n      BIGINT NOT NULL,
    PRIMARY KEY (status, type, slot)
);
INSERT INTO job_count (status, type, slot, n) SELECT status, type, 0, COUNT(*) FROM job GROUP BY status, type;
CREATE TABLE image_count (
    collection TEXT NOT NULL,
    status     TEXT NOT NULL,
    slot       BIGINT NOT NULL,
    n          BIGINT NOT NULL,
    PRIMARY KEY (collection, status, slot)
);
INSERT INTO image_count (collection, status, slot, n)
    SELECT COALESCE(collection, ''), status, 0, COUNT(*) FROM image GROUP BY COALESCE(collection, ''), status;

-- Transition tables: `gone` (old rows of an UPDATE or DELETE) and `came`
-- (new rows of an INSERT or UPDATE); a heartbeat's update nets to nothing.
CREATE FUNCTION job_count_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO job_count AS c (status, type, slot, n)
            SELECT status, type, pg_backend_pid(), COUNT(*) FROM came GROUP BY status, type
            ON CONFLICT (status, type, slot) DO UPDATE SET n = c.n + EXCLUDED.n;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO job_count AS c (status, type, slot, n)
            SELECT status, type, pg_backend_pid(), -COUNT(*) FROM gone GROUP BY status, type
            ON CONFLICT (status, type, slot) DO UPDATE SET n = c.n + EXCLUDED.n;
    ELSE
        INSERT INTO job_count AS c (status, type, slot, n)
            SELECT status, type, pg_backend_pid(), SUM(d) FROM (
                SELECT status, type, -1 AS d FROM gone UNION ALL SELECT status, type, 1 FROM came
            ) AS t GROUP BY status, type HAVING SUM(d) <> 0
            ON CONFLICT (status, type, slot) DO UPDATE SET n = c.n + EXCLUDED.n;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER job_count_insert AFTER INSERT ON job REFERENCING NEW TABLE AS came
    FOR EACH STATEMENT EXECUTE FUNCTION job_count_change();
CREATE TRIGGER job_count_delete AFTER DELETE ON job REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION job_count_change();
CREATE TRIGGER job_count_update AFTER UPDATE ON job REFERENCING OLD TABLE AS gone NEW TABLE AS came
    FOR EACH STATEMENT EXECUTE FUNCTION job_count_change();

CREATE FUNCTION image_count_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO image_count AS c (collection, status, slot, n)
            SELECT COALESCE(collection, ''), status, pg_backend_pid(), COUNT(*) FROM came
            GROUP BY COALESCE(collection, ''), status
            ON CONFLICT (collection, status, slot) DO UPDATE SET n = c.n + EXCLUDED.n;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO image_count AS c (collection, status, slot, n)
            SELECT COALESCE(collection, ''), status, pg_backend_pid(), -COUNT(*) FROM gone
            GROUP BY COALESCE(collection, ''), status
            ON CONFLICT (collection, status, slot) DO UPDATE SET n = c.n + EXCLUDED.n;
    ELSE
        INSERT INTO image_count AS c (collection, status, slot, n)
            SELECT k, status, pg_backend_pid(), SUM(d) FROM (
                SELECT COALESCE(collection, '') AS k, status, -1 AS d FROM gone
                UNION ALL SELECT COALESCE(collection, ''), status, 1 FROM came
            ) AS t GROUP BY k, status HAVING SUM(d) <> 0
            ON CONFLICT (collection, status, slot) DO UPDATE SET n = c.n + EXCLUDED.n;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER image_count_insert AFTER INSERT ON image REFERENCING NEW TABLE AS came
    FOR EACH STATEMENT EXECUTE FUNCTION image_count_change();
CREATE TRIGGER image_count_delete AFTER DELETE ON image REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION image_count_change();
CREATE TRIGGER image_count_update AFTER UPDATE ON image REFERENCING OLD TABLE AS gone NEW TABLE AS came
    FOR EACH STATEMENT EXECUTE FUNCTION image_count_change();

-- Finished jobs by end time: the admin chart reads the last hour from it
-- (status included, so index-only), and the pruner takes its batches in
-- its order. One entry per job that ends; PENDING and RUNNING jobs have none.
CREATE INDEX job_finished ON job (finished_at, status) WHERE finished_at IS NOT NULL;
-- CANCELLED jobs newest first, as the FAILED ones (job_failed): the job
-- list's filters by status then read only their rows.
CREATE INDEX job_cancelled ON job (id) WHERE status = 'CANCELLED';
-- The event stream's poll reads the images changed in the last seconds.
-- Written when an image changes (a handful of times in its life).
CREATE INDEX image_updated ON image (updated_at);
