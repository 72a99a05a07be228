-- Images and the job queue. Times are INTEGER milliseconds since the Unix
-- epoch, ids of images are TEXT (UUID v7): the types sqlx's Any driver
-- carries on both backends. Column names match the reference card's SQL.
CREATE TABLE image (
    id             TEXT PRIMARY KEY,
    title          TEXT NOT NULL,
    collection     TEXT,
    status         TEXT NOT NULL,
    checksum       TEXT NOT NULL,
    size_bytes     INTEGER NOT NULL,
    format         TEXT NOT NULL,
    width          INTEGER NOT NULL,
    height         INTEGER NOT NULL,
    orientation    INTEGER NOT NULL DEFAULT 1,
    temp_path      TEXT,
    original_path  TEXT,
    thumbnail_path TEXT,
    thumbnails     TEXT,
    preview_path   TEXT,
    last_error     TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX image_created ON image (created_at DESC, id);
CREATE INDEX image_collection ON image (collection);
CREATE INDEX image_checksum ON image (checksum);

CREATE TABLE job (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    type          TEXT NOT NULL,
    status        TEXT NOT NULL,
    payload       TEXT NOT NULL,
    image_id      TEXT,
    dedupe_key    TEXT UNIQUE,
    priority      INTEGER NOT NULL DEFAULT 0,
    attempts      INTEGER NOT NULL DEFAULT 0,
    max_attempts  INTEGER NOT NULL,
    run_at        INTEGER NOT NULL,
    locked_by     TEXT,
    locked_until  INTEGER,
    last_error    TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    finished_at   INTEGER
);
CREATE INDEX job_pending ON job (priority DESC, run_at, id) WHERE status = 'PENDING';
CREATE INDEX job_running ON job (locked_until) WHERE status = 'RUNNING';
CREATE INDEX job_image ON job (image_id);
CREATE INDEX job_status_type ON job (status, type);
