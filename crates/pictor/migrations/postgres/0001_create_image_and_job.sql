-- Images and the job queue. Times are BIGINT milliseconds since the Unix
-- epoch, ids of images are TEXT (UUID v7): the types sqlx's Any driver
-- carries on both backends. Column names match the reference card's SQL.
CREATE TABLE image (
    id             TEXT PRIMARY KEY,
    title          TEXT NOT NULL,
    collection     TEXT,
    status         TEXT NOT NULL,
    checksum       TEXT NOT NULL,
    size_bytes     BIGINT NOT NULL,
    format         TEXT NOT NULL,
    width          BIGINT NOT NULL,
    height         BIGINT NOT NULL,
    orientation    BIGINT NOT NULL DEFAULT 1,
    temp_path      TEXT,
    original_path  TEXT,
    thumbnail_path TEXT,
    thumbnails     TEXT,
    preview_path   TEXT,
    last_error     TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX image_created ON image (created_at DESC, id);
CREATE INDEX image_collection ON image (collection);
CREATE INDEX image_checksum ON image (checksum);

CREATE TABLE job (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    type          TEXT NOT NULL,
    status        TEXT NOT NULL,
    payload       TEXT NOT NULL,
    image_id      TEXT,
    dedupe_key    TEXT UNIQUE,
    priority      BIGINT NOT NULL DEFAULT 0,
    attempts      BIGINT NOT NULL DEFAULT 0,
    max_attempts  BIGINT NOT NULL,
    run_at        BIGINT NOT NULL,
    locked_by     TEXT,
    locked_until  BIGINT,
    last_error    TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    finished_at   BIGINT
);
CREATE INDEX job_pending ON job (priority DESC, run_at, id) WHERE status = 'PENDING';
CREATE INDEX job_running ON job (locked_until) WHERE status = 'RUNNING';
CREATE INDEX job_image ON job (image_id);
CREATE INDEX job_status_type ON job (status, type);
