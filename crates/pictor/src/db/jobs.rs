//! SQL of the `job` table: enqueue (one or many), claim, lease, complete (one
//! or a batch), retry, fail, rescue, release, and the admin reads. Every state
//! change of a running job checks the lease (`status = 'RUNNING' AND
//! locked_by = runner`), so a runner that lost its lease cannot overwrite
//! another runner's result.

use pictor_client::models::{JobKind, JobStatus};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, AnyPool, Executor, Row};

use super::{Backend, Db, DbResult, Durability, ImageId};
use crate::clock::Millis;

/// A job's id (the `job.id` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub i64);

impl JobId {
    /// The number, as bound to SQL and shown in the API.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A row of the `job` table.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Id.
    pub id: JobId,
    /// What it does.
    pub kind: JobKind,
    /// Where it is in its life.
    pub status: JobStatus,
    /// The card's payload for its kind, as JSON text.
    pub payload: String,
    /// The image it works on.
    pub image_id: Option<ImageId>,
    /// Higher runs first.
    pub priority: i64,
    /// Attempts started (the claim increments it).
    pub attempts: i64,
    /// Attempts allowed before it ends FAILED.
    pub max_attempts: i64,
    /// Not claimed before this time.
    pub run_at: Millis,
    /// The runner holding its lease.
    pub locked_by: Option<String>,
    /// End of the lease.
    pub locked_until: Option<Millis>,
    /// The last attempt's error.
    pub last_error: Option<String>,
    /// Creation time.
    pub created_at: Millis,
    /// Last change.
    pub updated_at: Millis,
    /// When it ended, if it has.
    pub finished_at: Option<Millis>,
}

impl Job {
    /// Parses the payload as the type its kind expects.
    ///
    /// # Errors
    /// The payload is not valid for the kind.
    pub fn payload_as<T: for<'de> Deserialize<'de>>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.payload)
    }
}

/// A job to insert.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// What it does.
    pub kind: JobKind,
    /// The card's payload, serialised.
    pub payload: String,
    /// The image it works on.
    pub image_id: Option<ImageId>,
    /// Higher runs first.
    pub priority: i64,
    /// Inserting a second job with the same key does nothing, so a re-run
    /// parent cannot enqueue its children twice (DESIGN invariant 2).
    pub dedupe_key: Option<String>,
}

impl NewJob {
    /// A job for one image, deduplicated per image and kind.
    ///
    /// # Errors
    /// The payload cannot be serialised.
    pub fn for_image<P: Serialize>(kind: JobKind, image_id: &ImageId, payload: &P) -> Result<Self, serde_json::Error> {
        Ok(Self {
            kind,
            payload: serde_json::to_string(payload)?,
            image_id: Some(image_id.clone()),
            priority: 0,
            dedupe_key: Some(format!("{kind}:{image_id}")),
        })
    }

    /// The same job with another priority (higher runs first).
    #[must_use]
    pub fn with_priority(self, priority: i64) -> Self {
        Self { priority, ..self }
    }
}

/// The lease check of every write to a running job (DESIGN invariant 8):
/// the job is still RUNNING and held by the runner bound as `$1`. A runner
/// that lost its lease cannot overwrite another runner's result.
macro_rules! held_by_runner {
    () => {
        "status = 'RUNNING' AND locked_by = $1"
    };
}

const COLUMNS: &str = "id, type, status, payload, image_id, priority, attempts, max_attempts, run_at, \
                       locked_by, locked_until, last_error, created_at, updated_at, finished_at";

/// The claim: one statement picks due jobs, marks them RUNNING with a lease,
/// counts the attempt and returns them. On PostgreSQL `SKIP LOCKED` keeps
/// concurrent claimers off each other's rows; SQLite has one writer anyway.
const CLAIM_SQLITE: &str = "UPDATE job SET status = 'RUNNING', attempts = attempts + 1, locked_by = $1, \
     locked_until = $2, updated_at = $3 \
     WHERE id IN (SELECT id FROM job WHERE status = 'PENDING' AND run_at <= $3 \
                  ORDER BY priority DESC, run_at, id LIMIT $4) \
     RETURNING id, type, status, payload, image_id, priority, attempts, max_attempts, run_at, \
               locked_by, locked_until, last_error, created_at, updated_at, finished_at";
/// The PostgreSQL claim, whose own (implicit) transaction does not wait for
/// its WAL flush: `set_config(..., true)` sets `synchronous_commit = off` for
/// that transaction only. A claim need not survive a server crash: a lost
/// claim leaves the job PENDING with its attempt uncounted, and the
/// completion then finds no lease and writes nothing, so the job just runs
/// again (at-least-once, DESIGN "The queue"; the rest of the queue's
/// bookkeeping makes the same choice, [`Durability::Bookkeeping`]). One
/// round trip, no fsync wait.
/// The picked ids come as one array (an init plan), so that the plan stays
/// index scans whatever the backlog, including the generic plan
/// [`claimer`] makes PostgreSQL keep.
const CLAIM_POSTGRES: &str = "UPDATE job SET status = 'RUNNING', attempts = attempts + 1, locked_by = $1, \
     locked_until = $2, updated_at = $3 \
     WHERE id = ANY(ARRAY(SELECT id FROM job WHERE status = 'PENDING' AND run_at <= $3 \
                          ORDER BY priority DESC, run_at, id LIMIT $4 FOR UPDATE SKIP LOCKED)) \
       AND set_config('synchronous_commit', 'off', true) IS NOT NULL \
     RETURNING id, type, status, payload, image_id, priority, attempts, max_attempts, run_at, \
               locked_by, locked_until, last_error, created_at, updated_at, finished_at";

fn decode_err(e: impl std::error::Error + Send + Sync + 'static) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(e))
}

/// Maps a row selected with [`COLUMNS`].
fn job_from_row(row: &AnyRow) -> Result<Job, sqlx::Error> {
    let kind: String = row.try_get("type")?;
    let status: String = row.try_get("status")?;
    Ok(Job {
        id: JobId(row.try_get("id")?),
        kind: kind.parse::<JobKind>().map_err(decode_err)?,
        status: status.parse::<JobStatus>().map_err(decode_err)?,
        payload: row.try_get("payload")?,
        image_id: row.try_get::<Option<String>, _>("image_id")?.map(ImageId::from),
        priority: row.try_get("priority")?,
        attempts: row.try_get("attempts")?,
        max_attempts: row.try_get("max_attempts")?,
        run_at: Millis(row.try_get("run_at")?),
        locked_by: row.try_get("locked_by")?,
        locked_until: row.try_get::<Option<i64>, _>("locked_until")?.map(Millis),
        last_error: row.try_get("last_error")?,
        created_at: Millis(row.try_get("created_at")?),
        updated_at: Millis(row.try_get("updated_at")?),
        finished_at: row.try_get::<Option<i64>, _>("finished_at")?.map(Millis),
    })
}

/// The PostgreSQL channel an enqueue notifies (inside its transaction, so
/// the notice goes out on commit); `queue::wakeup` listens on it.
pub const NOTIFY_CHANNEL: &str = "pictor_jobs";

const INSERT_COLUMNS: &str = "INSERT INTO job (type, status, payload, image_id, dedupe_key, priority, attempts, \
                              max_attempts, run_at, created_at, updated_at) \
     VALUES ($1, 'PENDING', $2, $3, $4, $5, 0, $6, $7, $7, $7) \
     ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING RETURNING id";

/// Inserts a job due now; returns its id, or `None` when a job with the same
/// dedupe key exists already. On PostgreSQL the same statement notifies
/// [`NOTIFY_CHANNEL`] when it inserted the job (one round trip, not two).
///
/// # Errors
/// The database failed.
pub async fn insert<'c, E: Executor<'c, Database = Any>>(
    exec: E,
    backend: Backend,
    job: &NewJob,
    max_attempts: i64,
    now: Millis,
) -> DbResult<Option<JobId>> {
    let sql = match backend {
        Backend::Sqlite => INSERT_COLUMNS.to_owned(),
        Backend::Postgres => format!(
            "WITH inserted AS ({INSERT_COLUMNS}) \
             SELECT id FROM inserted WHERE pg_notify('{NOTIFY_CHANNEL}', '') IS NOT NULL"
        ),
    };
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(job.kind.as_str())
        .bind(&job.payload)
        .bind(job.image_id.as_ref().map(ImageId::as_str))
        .bind(job.dedupe_key.as_deref())
        .bind(job.priority)
        .bind(max_attempts)
        .bind(now.get())
        .fetch_optional(exec)
        .await?;
    Ok(row.map(|r| r.try_get::<i64, _>("id").map(JobId)).transpose()?)
}

/// On PostgreSQL, notifies [`NOTIFY_CHANNEL`] when the caller's transaction
/// commits; nothing on SQLite (one process, woken in memory).
///
/// # Errors
/// The database failed.
pub async fn notify<'c, E: Executor<'c, Database = Any>>(exec: E, backend: Backend) -> DbResult<()> {
    if backend == Backend::Postgres {
        sqlx::query(sqlx::AssertSqlSafe(format!("NOTIFY {NOTIFY_CHANNEL}"))).execute(exec).await?;
    }
    Ok(())
}

/// One row of a bulk insert, as the JSON the bulk statements read.
#[derive(serde::Serialize)]
struct BulkRow<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    payload: &'a str,
    image_id: Option<&'a str>,
    dedupe_key: Option<&'a str>,
    priority: i64,
}

/// Bulk insert: every row of a JSON array in one statement (one bind, one
/// prepared statement whatever the count). Rows whose dedupe key exists
/// already are skipped.
const INSERT_MANY_SQLITE: &str = "INSERT INTO job (type, status, payload, image_id, dedupe_key, priority, attempts, \
                                  max_attempts, run_at, created_at, updated_at) \
     SELECT json_extract(value, '$.type'), 'PENDING', json_extract(value, '$.payload'), \
            json_extract(value, '$.image_id'), json_extract(value, '$.dedupe_key'), \
            json_extract(value, '$.priority'), 0, $2, $3, $3, $3 \
       FROM json_each($1) WHERE true \
     ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING";
const INSERT_MANY_POSTGRES: &str = "INSERT INTO job (type, status, payload, image_id, dedupe_key, priority, attempts, \
                                    max_attempts, run_at, created_at, updated_at) \
     SELECT r.type, 'PENDING', r.payload, r.image_id, r.dedupe_key, r.priority, 0, $2, $3, $3, $3 \
       FROM jsonb_to_recordset(CAST($1 AS JSONB)) \
            AS r(type TEXT, payload TEXT, image_id TEXT, dedupe_key TEXT, priority BIGINT) \
     ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING";

/// Inserts many jobs due now in one statement; returns how many were
/// inserted (jobs whose dedupe key exists already are skipped).
///
/// # Errors
/// The database failed, or a payload could not be serialised.
pub async fn insert_many<'c, E: Executor<'c, Database = Any>>(
    exec: E,
    backend: Backend,
    jobs: &[NewJob],
    max_attempts: i64,
    now: Millis,
) -> DbResult<u64> {
    if jobs.is_empty() {
        return Ok(0);
    }
    let rows = jobs
        .iter()
        .map(|j| BulkRow {
            kind: j.kind.as_str(),
            payload: &j.payload,
            image_id: j.image_id.as_ref().map(ImageId::as_str),
            dedupe_key: j.dedupe_key.as_deref(),
            priority: j.priority,
        })
        .collect::<Vec<_>>();
    let json = serde_json::to_string(&rows).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let sql = match backend {
        Backend::Sqlite => INSERT_MANY_SQLITE,
        Backend::Postgres => INSERT_MANY_POSTGRES,
    };
    let done = sqlx::query(sql).bind(json).bind(max_attempts).bind(now.get()).execute(exec).await?;
    Ok(done.rows_affected())
}

/// A write connection of its own for a runner's claims, out of the pool (so
/// no ping before and after each claim), where [`Db::may_hold_writer`]. On
/// PostgreSQL it plans the claim once (`plan_cache_mode =
/// force_generic_plan`): planning it afresh for each limit, as PostgreSQL
/// otherwise does, costs as much as running it.
///
/// # Errors
/// The database could not be reached.
pub async fn claimer(db: &Db) -> DbResult<AnyConnection> {
    let mut conn = db.write_connection(Durability::Bookkeeping).await?.detach();
    if db.backend == Backend::Postgres {
        conn.execute("SET plan_cache_mode = force_generic_plan").await?;
    }
    Ok(conn)
}

/// What a claim asks for: who claims, how many jobs at most, and the lease.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    /// The claiming runner's name (`locked_by`).
    pub runner: &'a str,
    /// Most jobs to take.
    pub limit: usize,
    /// The time of the claim: jobs due by then are taken.
    pub now: Millis,
    /// End of the lease the claimed jobs get.
    pub locked_until: Millis,
}

/// Claims due jobs as `claim` asks, highest priority first. `exec` must not
/// be inside a transaction (the claim is its own).
///
/// # Errors
/// The database failed.
pub async fn claim<'c, E: Executor<'c, Database = Any>>(
    exec: E,
    backend: Backend,
    claim: Claim<'_>,
) -> DbResult<Vec<Job>> {
    let sql = match backend {
        Backend::Sqlite => CLAIM_SQLITE,
        Backend::Postgres => CLAIM_POSTGRES,
    };
    // One statement in its own transaction: on SQLite it takes the write
    // lock when it starts, so it cannot deadlock upgrading a read lock.
    let rows = sqlx::query(sql)
        .bind(claim.runner)
        .bind(claim.locked_until.get())
        .bind(claim.now.get())
        .bind(i64::try_from(claim.limit).unwrap_or(i64::MAX))
        .fetch_all(exec)
        .await?;
    let mut jobs = rows.iter().map(job_from_row).collect::<Result<Vec<_>, _>>()?;
    jobs.sort_by_key(|j| (-j.priority, j.run_at, j.id));
    Ok(jobs)
}

/// Extends the lease of the given jobs, where `runner` still holds them;
/// returns how many. Only jobs still being worked on are extended, so one
/// whose completion could not be written is left to the rescuer.
///
/// # Errors
/// The database failed.
pub async fn extend_leases<'c, E: Executor<'c, Database = Any>>(
    exec: E,
    runner: &str,
    ids: &[JobId],
    locked_until: Millis,
    now: Millis,
) -> DbResult<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let placeholders = (4..4 + ids.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
    let sql = format!(
        concat!("UPDATE job SET locked_until = $2, updated_at = $3 WHERE ", held_by_runner!(), " AND id IN ({})"),
        placeholders
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(runner).bind(locked_until.get()).bind(now.get());
    for id in ids {
        query = query.bind(id.get());
    }
    Ok(query.execute(exec).await?.rows_affected())
}

/// Marks a job `runner` holds COMPLETED. False when the lease was lost.
/// `locked_by` keeps the runner's name, so an operator can see who ran it.
///
/// # Errors
/// The database failed.
pub async fn complete<'c, E: Executor<'c, Database = Any>>(
    exec: E,
    id: JobId,
    runner: &str,
    now: Millis,
) -> DbResult<bool> {
    let done = sqlx::query(concat!(
        "UPDATE job SET status = 'COMPLETED', locked_until = NULL, finished_at = $3, updated_at = $3 WHERE ",
        held_by_runner!(),
        " AND id = $2"
    ))
    .bind(runner)
    .bind(id.get())
    .bind(now.get())
    .execute(exec)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Completes many jobs at once: the ids listed as one bound text value, so
/// one prepared statement serves every batch size.
const COMPLETE_MANY_SQLITE: &str = concat!(
    "UPDATE job SET status = 'COMPLETED', locked_until = NULL, finished_at = $2, updated_at = $2 WHERE ",
    held_by_runner!(),
    " AND id IN (SELECT value FROM json_each($3)) RETURNING id"
);
/// Bookkeeping, so without waiting for its WAL flush as the claim
/// ([`Durability::Bookkeeping`]), also when it is a statement on its own.
const COMPLETE_MANY_POSTGRES: &str = concat!(
    "UPDATE job SET status = 'COMPLETED', locked_until = NULL, finished_at = $2, updated_at = $2 WHERE ",
    held_by_runner!(),
    " AND id = ANY(CAST($3 AS BIGINT[])) AND set_config('synchronous_commit', 'off', true) IS NOT NULL RETURNING id"
);

/// Marks the listed jobs `runner` still holds COMPLETED, in one statement;
/// returns the ids it completed. A listed job missing from the result had
/// lost its lease, and nothing was written for it.
///
/// # Errors
/// The database failed.
pub async fn complete_many<'c, E: Executor<'c, Database = Any>>(
    exec: E,
    backend: Backend,
    ids: &[JobId],
    runner: &str,
    now: Millis,
) -> DbResult<Vec<JobId>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let list = ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
    let (sql, ids_text) = match backend {
        Backend::Sqlite => (COMPLETE_MANY_SQLITE, format!("[{list}]")),
        Backend::Postgres => (COMPLETE_MANY_POSTGRES, format!("{{{list}}}")),
    };
    let rows = sqlx::query(sql).bind(runner).bind(now.get()).bind(ids_text).fetch_all(exec).await?;
    Ok(rows.iter().map(|r| r.try_get::<i64, _>("id").map(JobId)).collect::<Result<_, _>>()?)
}

/// Puts a job `runner` holds back to PENDING until `run_at`, keeping the
/// error. False when the lease was lost.
///
/// # Errors
/// The database failed.
pub async fn retry_later<'c, E: Executor<'c, Database = Any>>(
    exec: E,
    id: JobId,
    runner: &str,
    error: &str,
    run_at: Millis,
    now: Millis,
) -> DbResult<bool> {
    let done = sqlx::query(concat!(
        "UPDATE job SET status = 'PENDING', locked_by = NULL, locked_until = NULL, last_error = $3, \
                        run_at = $4, updated_at = $5 WHERE ",
        held_by_runner!(),
        " AND id = $2"
    ))
    .bind(runner)
    .bind(id.get())
    .bind(error)
    .bind(run_at.get())
    .bind(now.get())
    .execute(exec)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Ends a job `runner` holds FAILED with its error. False when the lease was lost.
///
/// # Errors
/// The database failed.
pub async fn fail<'c, E: Executor<'c, Database = Any>>(
    exec: E,
    id: JobId,
    runner: &str,
    error: &str,
    now: Millis,
) -> DbResult<bool> {
    let done = sqlx::query(concat!(
        "UPDATE job SET status = 'FAILED', locked_until = NULL, last_error = $3, finished_at = $4, updated_at = $4 \
         WHERE ",
        held_by_runner!(),
        " AND id = $2"
    ))
    .bind(runner)
    .bind(id.get())
    .bind(error)
    .bind(now.get())
    .execute(exec)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A job the rescuer moved, and where to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rescued {
    /// The job.
    pub id: JobId,
    /// What it does.
    pub kind: JobKind,
    /// Its image.
    pub image_id: Option<ImageId>,
    /// PENDING (will run again) or FAILED (out of attempts).
    pub status: JobStatus,
}

/// Returns every RUNNING job whose lease ended before `now` to PENDING, or
/// to FAILED when it is out of attempts (DESIGN invariant 4).
///
/// # Errors
/// The database failed.
pub async fn rescue_expired<'c, E: Executor<'c, Database = Any>>(
    exec: E,
    error: &str,
    now: Millis,
) -> DbResult<Vec<Rescued>> {
    let rows = sqlx::query(
        "UPDATE job SET \
            status = CASE WHEN attempts >= max_attempts THEN 'FAILED' ELSE 'PENDING' END, \
            finished_at = CASE WHEN attempts >= max_attempts THEN $1 ELSE NULL END, \
            locked_by = NULL, locked_until = NULL, last_error = $2, run_at = $1, updated_at = $1 \
         WHERE status = 'RUNNING' AND locked_until < $1 \
         RETURNING id, type, image_id, status",
    )
    .bind(now.get())
    .bind(error)
    .fetch_all(exec)
    .await?;
    let rescued = rows
        .iter()
        .map(|r| {
            let kind: String = r.try_get("type")?;
            let status: String = r.try_get("status")?;
            Ok(Rescued {
                id: JobId(r.try_get("id")?),
                kind: kind.parse().map_err(decode_err)?,
                image_id: r.try_get::<Option<String>, _>("image_id")?.map(ImageId::from),
                status: status.parse().map_err(decode_err)?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(rescued)
}

/// Gives back the jobs `runner` still holds at shutdown, without counting
/// the interrupted attempt.
///
/// # Errors
/// The database failed.
pub async fn release<'c, E: Executor<'c, Database = Any>>(exec: E, runner: &str, now: Millis) -> DbResult<u64> {
    let done = sqlx::query(concat!(
        "UPDATE job SET status = 'PENDING', locked_by = NULL, locked_until = NULL, run_at = $2, \
                        updated_at = $2, attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END WHERE ",
        held_by_runner!()
    ))
    .bind(runner)
    .bind(now.get())
    .execute(exec)
    .await?;
    Ok(done.rows_affected())
}

/// Re-queues a FAILED or CANCELLED job with a fresh set of attempts; returns
/// it, or `None` when there is no such job in those states.
///
/// # Errors
/// The database failed.
pub async fn requeue<'c, E: Executor<'c, Database = Any>>(exec: E, id: JobId, now: Millis) -> DbResult<Option<Job>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE job SET status = 'PENDING', attempts = 0, run_at = $1, updated_at = $1, finished_at = NULL \
         WHERE id = $2 AND status IN ('FAILED', 'CANCELLED') RETURNING {COLUMNS}"
    )))
    .bind(now.get())
    .bind(id.get())
    .fetch_optional(exec)
    .await?;
    Ok(row.as_ref().map(job_from_row).transpose()?)
}

/// Cancels a PENDING or FAILED job; returns it, or `None` when there is no
/// such job in those states.
///
/// # Errors
/// The database failed.
pub async fn cancel<'c, E: Executor<'c, Database = Any>>(exec: E, id: JobId, now: Millis) -> DbResult<Option<Job>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE job SET status = 'CANCELLED', finished_at = $1, updated_at = $1 \
         WHERE id = $2 AND status IN ('PENDING', 'FAILED') RETURNING {COLUMNS}"
    )))
    .bind(now.get())
    .bind(id.get())
    .fetch_optional(exec)
    .await?;
    Ok(row.as_ref().map(job_from_row).transpose()?)
}

/// One job by id.
///
/// # Errors
/// The database failed.
pub async fn get<'c, E: Executor<'c, Database = Any>>(exec: E, id: JobId) -> DbResult<Option<Job>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM job WHERE id = $1")))
        .bind(id.get())
        .fetch_optional(exec)
        .await?;
    Ok(row.as_ref().map(job_from_row).transpose()?)
}

/// Filters of the admin job list.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only jobs in this state.
    pub status: Option<JobStatus>,
    /// Only jobs of this kind.
    pub kind: Option<JobKind>,
    /// Only jobs of this image.
    pub image_id: Option<ImageId>,
}

/// A page of jobs, newest first, and how many match in all.
///
/// # Errors
/// The database failed.
pub async fn list(pool: &AnyPool, filter: &JobFilter, limit: i64, offset: i64) -> DbResult<(Vec<Job>, i64)> {
    // Absent filters bind NULL, so one statement serves every combination.
    const WHERE: &str = "($1 IS NULL OR status = $1) AND ($2 IS NULL OR type = $2) AND ($3 IS NULL OR image_id = $3)";
    let status = filter.status.map(JobStatus::as_str);
    let kind = filter.kind.map(JobKind::as_str);
    let total: i64 = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) AS n FROM job WHERE {WHERE}")))
        .bind(status)
        .bind(kind)
        .bind(filter.image_id.as_ref().map(ImageId::as_str))
        .fetch_one(pool)
        .await?
        .try_get("n")?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM job WHERE {WHERE} ORDER BY id DESC LIMIT $4 OFFSET $5"
    )))
    .bind(status)
    .bind(kind)
    .bind(filter.image_id.as_deref())
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    Ok((rows.iter().map(job_from_row).collect::<Result<_, _>>()?, total))
}

/// The ids of every job in `status`, oldest first (a snapshot, so that a
/// bulk action on them ends even while more jobs enter that state).
///
/// # Errors
/// The database failed.
pub async fn ids_in_status(pool: &AnyPool, status: JobStatus) -> DbResult<Vec<JobId>> {
    let rows =
        sqlx::query("SELECT id FROM job WHERE status = $1 ORDER BY id").bind(status.as_str()).fetch_all(pool).await?;
    Ok(rows.iter().map(|r| r.try_get::<i64, _>("id").map(JobId)).collect::<Result<_, _>>()?)
}

/// The jobs of the given images, oldest first.
///
/// # Errors
/// The database failed.
pub async fn for_images(pool: &AnyPool, image_ids: &[&ImageId]) -> DbResult<Vec<Job>> {
    if image_ids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders = (1..=image_ids.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
    let sql = format!("SELECT {COLUMNS} FROM job WHERE image_id IN ({placeholders}) ORDER BY id");
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in image_ids {
        query = query.bind(id.as_str());
    }
    let rows = query.fetch_all(pool).await?;
    Ok(rows.iter().map(job_from_row).collect::<Result<_, _>>()?)
}

/// Deletes an image's jobs that no runner holds (a held one finishes and
/// finds its image gone).
///
/// # Errors
/// The database failed.
pub async fn delete_idle_for_image<'c, E: Executor<'c, Database = Any>>(exec: E, image_id: &ImageId) -> DbResult<u64> {
    let done = sqlx::query("DELETE FROM job WHERE image_id = $1 AND status <> 'RUNNING'")
        .bind(image_id.as_str())
        .execute(exec)
        .await?;
    Ok(done.rows_affected())
}

/// Deletes COMPLETED and CANCELLED jobs that ended before `before`.
///
/// # Errors
/// The database failed.
pub async fn prune_finished<'c, E: Executor<'c, Database = Any>>(exec: E, before: Millis) -> DbResult<u64> {
    let done = sqlx::query("DELETE FROM job WHERE status IN ('COMPLETED', 'CANCELLED') AND finished_at < $1")
        .bind(before.get())
        .execute(exec)
        .await?;
    Ok(done.rows_affected())
}

/// Every job changed after `since`, for the event stream's poll.
///
/// # Errors
/// The database failed.
pub async fn changed_since(pool: &AnyPool, since: Millis) -> DbResult<Vec<Job>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM job WHERE updated_at > $1")))
        .bind(since.get())
        .fetch_all(pool)
        .await?;
    Ok(rows.iter().map(job_from_row).collect::<Result<_, _>>()?)
}

/// `(status, type, count)` of every job, for the admin page's counts.
///
/// # Errors
/// The database failed.
pub async fn counts_by_status_and_type(pool: &AnyPool) -> DbResult<Vec<(String, String, i64)>> {
    let rows = sqlx::query("SELECT status, type, COUNT(*) AS n FROM job GROUP BY status, type").fetch_all(pool).await?;
    Ok(rows
        .iter()
        .map(|r| Ok((r.try_get("status")?, r.try_get("type")?, r.try_get("n")?)))
        .collect::<Result<_, sqlx::Error>>()?)
}

/// `(status, finished_at)` of the jobs that ended COMPLETED or FAILED after
/// `since`, for the admin page's chart.
///
/// # Errors
/// The database failed.
pub async fn finished_since(pool: &AnyPool, since: Millis) -> DbResult<Vec<(String, Millis)>> {
    let rows = sqlx::query(
        "SELECT status, finished_at FROM job \
         WHERE finished_at IS NOT NULL AND finished_at > $1 AND status IN ('COMPLETED', 'FAILED')",
    )
    .bind(since.get())
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| Ok((r.try_get("status")?, Millis(r.try_get("finished_at")?))))
        .collect::<Result<_, sqlx::Error>>()?)
}

/// The `run_at` of the PENDING job that has been due the longest (at
/// `now`), if any: how far behind the runners are.
///
/// # Errors
/// The database failed.
pub async fn oldest_due_pending(pool: &AnyPool, now: Millis) -> DbResult<Option<Millis>> {
    let oldest: Option<i64> =
        sqlx::query_scalar("SELECT MIN(run_at) FROM job WHERE status = 'PENDING' AND run_at <= $1")
            .bind(now.get())
            .fetch_one(pool)
            .await?;
    Ok(oldest.map(Millis))
}
