-- Reads whose cost does not grow with the library (issue 17).
--
-- Counts kept, not counted: job_count (per status and type) and image_count
-- (per collection, '' for none, and status) change in the very transaction
-- that inserts, updates or deletes a row, through triggers, so they are
-- exact whatever writes (the API, the runner, the rescuer, the pruner, an
-- operator's SQL). Readers sum `n` over `slot`: always 0 here (SQLite has
-- one writer); PostgreSQL keeps one slot per connection, so that concurrent
-- writers never wait on one counter row. Cost per write: one upsert per
-- changed row and side (a status change: two).
CREATE TABLE job_count (
    status TEXT NOT NULL,
    type   TEXT NOT NULL,
    slot   INTEGER NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (status, type, slot)
);
INSERT INTO job_count (status, type, slot, n) SELECT status, type, 0, COUNT(*) FROM job GROUP BY status, type;
CREATE TABLE image_count (
    collection TEXT NOT NULL,
    status     TEXT NOT NULL,
    slot       INTEGER NOT NULL,
    n          INTEGER NOT NULL,
    PRIMARY KEY (collection, status, slot)
);
INSERT INTO image_count (collection, status, slot, n)
    SELECT COALESCE(collection, ''), status, 0, COUNT(*) FROM image GROUP BY COALESCE(collection, ''), status;

CREATE TRIGGER job_count_insert AFTER INSERT ON job BEGIN
    INSERT INTO job_count (status, type, slot, n) VALUES (NEW.status, NEW.type, 0, 1)
        ON CONFLICT (status, type, slot) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER job_count_delete AFTER DELETE ON job BEGIN
    UPDATE job_count SET n = n - 1 WHERE status = OLD.status AND type = OLD.type AND slot = 0;
END;
CREATE TRIGGER job_count_update AFTER UPDATE OF status, type ON job
    WHEN OLD.status <> NEW.status OR OLD.type <> NEW.type BEGIN
    UPDATE job_count SET n = n - 1 WHERE status = OLD.status AND type = OLD.type AND slot = 0;
    INSERT INTO job_count (status, type, slot, n) VALUES (NEW.status, NEW.type, 0, 1)
        ON CONFLICT (status, type, slot) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER image_count_insert AFTER INSERT ON image BEGIN
    INSERT INTO image_count (collection, status, slot, n) VALUES (COALESCE(NEW.collection, ''), NEW.status, 0, 1)
        ON CONFLICT (collection, status, slot) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER image_count_delete AFTER DELETE ON image BEGIN
    UPDATE image_count SET n = n - 1 WHERE collection = COALESCE(OLD.collection, '') AND status = OLD.status AND slot = 0;
END;
CREATE TRIGGER image_count_update AFTER UPDATE OF status, collection ON image
    WHEN OLD.status <> NEW.status OR COALESCE(OLD.collection, '') <> COALESCE(NEW.collection, '') BEGIN
    UPDATE image_count SET n = n - 1 WHERE collection = COALESCE(OLD.collection, '') AND status = OLD.status AND slot = 0;
    INSERT INTO image_count (collection, status, slot, n) VALUES (COALESCE(NEW.collection, ''), NEW.status, 0, 1)
        ON CONFLICT (collection, status, slot) DO UPDATE SET n = n + 1;
END;

-- Finished jobs by end time: the admin chart reads the last hour from it
-- (status included, so without the table), and the pruner takes its
-- batches in its order. One entry per job that ends (written when
-- finished_at is set); PENDING and RUNNING jobs have none.
CREATE INDEX job_finished ON job (finished_at, status) WHERE finished_at IS NOT NULL;
-- CANCELLED jobs newest first, as the FAILED ones (job_failed): the job
-- list's filters by status then read only their rows.
CREATE INDEX job_cancelled ON job (id) WHERE status = 'CANCELLED';
-- The event stream's poll reads the images changed in the last seconds.
-- Written when an image changes (a handful of times in its life).
CREATE INDEX image_updated ON image (updated_at);
