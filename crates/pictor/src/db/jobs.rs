//! SQL of the `job` table outside of leases: enqueue (one or many), requeue,
//! cancel, prune, and the admin reads. What happens to a job between its
//! claim and its ending is in [`super::leases`].

use pictor_client::models::{JobKind, JobStatus};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, Executor, Row};

use super::{Backend, DbResult, ImageId, Listed, Window, where_clause};
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

/// The token of one claim of a job (the `job.lease_id` column): drawn at
/// random by each claim, so that a re-claimed job, even by the same runner,
/// never shares its lease with an earlier execution (DESIGN invariant 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseId(pub i64);

/// A job as one execution of it holds it: what every write of a running job
/// checks, beside the runner's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lease {
    /// The job.
    pub job: JobId,
    /// Its claim's token; `None` (a job never claimed) never passes the check.
    pub id: Option<LeaseId>,
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
    /// The lease of its last claim: a new one at every claim (DESIGN invariant 8).
    pub lease_id: Option<LeaseId>,
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
    /// The lease this job was claimed with, as its execution holds it.
    pub fn lease(&self) -> Lease {
        Lease { job: self.id, id: self.lease_id }
    }

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

/// Every column of a [`Job`], as [`job_from_row`] reads them.
pub(super) const COLUMNS: &str = "id, type, status, payload, image_id, priority, attempts, max_attempts, run_at, \
                       locked_by, locked_until, lease_id, last_error, created_at, updated_at, finished_at";

pub(super) fn decode_err(e: impl std::error::Error + Send + Sync + 'static) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(e))
}

/// Maps a row selected with [`COLUMNS`].
pub(super) fn job_from_row(row: &AnyRow) -> Result<Job, sqlx::Error> {
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
        lease_id: row.try_get::<Option<i64>, _>("lease_id")?.map(LeaseId),
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
/// prepared statement whatever the count), up to its conflict clause: what
/// a row whose dedupe key exists already does is [`SKIP_DUPLICATE`] or
/// [`REARM_FINISHED`].
const INSERT_MANY_SQLITE: &str = "INSERT INTO job (type, status, payload, image_id, dedupe_key, priority, attempts, \
                                  max_attempts, run_at, created_at, updated_at) \
     SELECT json_extract(value, '$.type'), 'PENDING', json_extract(value, '$.payload'), \
            json_extract(value, '$.image_id'), json_extract(value, '$.dedupe_key'), \
            json_extract(value, '$.priority'), 0, $2, $3, $3, $3 \
       FROM json_each($1) WHERE true \
     ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL";
const INSERT_MANY_POSTGRES: &str = "INSERT INTO job (type, status, payload, image_id, dedupe_key, priority, attempts, \
                                    max_attempts, run_at, created_at, updated_at) \
     SELECT r.type, 'PENDING', r.payload, r.image_id, r.dedupe_key, r.priority, 0, $2, $3, $3, $3 \
       FROM jsonb_to_recordset(CAST($1 AS JSONB)) \
            AS r(type TEXT, payload TEXT, image_id TEXT, dedupe_key TEXT, priority BIGINT) \
     ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL";
/// A duplicate is skipped.
const SKIP_DUPLICATE: &str = " DO NOTHING";
/// A duplicate that has finished (COMPLETED, FAILED, CANCELLED) becomes a
/// new PENDING job with the row's payload and priority and fresh attempts;
/// one PENDING or RUNNING is left alone (it is the same work, queued).
/// Returns the image of each job inserted or re-armed.
const REARM_FINISHED: &str = " DO UPDATE SET status = 'PENDING', payload = excluded.payload, \
       priority = excluded.priority, attempts = 0, max_attempts = excluded.max_attempts, run_at = excluded.run_at, \
       locked_by = NULL, locked_until = NULL, lease_id = NULL, last_error = NULL, created_at = excluded.created_at, \
       updated_at = excluded.updated_at, finished_at = NULL \
     WHERE job.status IN ('COMPLETED', 'FAILED', 'CANCELLED') \
     RETURNING image_id";

/// The JSON array the bulk statements read.
fn bulk_rows(jobs: &[NewJob]) -> Result<String, sqlx::Error> {
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
    serde_json::to_string(&rows).map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

/// The bulk statement of `backend` with its conflict clause.
fn insert_many_sql(backend: Backend, on_duplicate: &str) -> String {
    let insert = match backend {
        Backend::Sqlite => INSERT_MANY_SQLITE,
        Backend::Postgres => INSERT_MANY_POSTGRES,
    };
    format!("{insert}{on_duplicate}")
}

/// Inserts many jobs due now in one statement; returns how many were
/// inserted (jobs whose dedupe key exists already are skipped). On
/// PostgreSQL the same statement notifies [`NOTIFY_CHANNEL`] when it
/// inserted any (one round trip, as [`insert`]).
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
    let insert = insert_many_sql(backend, SKIP_DUPLICATE);
    let sql = match backend {
        Backend::Sqlite => format!("{insert} RETURNING 1"),
        Backend::Postgres => format!(
            "WITH inserted AS ({insert} RETURNING 1) SELECT COUNT(*) AS n, \
             CASE WHEN COUNT(*) > 0 THEN pg_notify('{NOTIFY_CHANNEL}', '') IS NOT NULL END AS notified FROM inserted"
        ),
    };
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(bulk_rows(jobs)?)
        .bind(max_attempts)
        .bind(now.get())
        .fetch_all(exec)
        .await?;
    Ok(match backend {
        Backend::Sqlite => rows.len() as u64,
        Backend::Postgres => {
            rows.first().map(|r| r.try_get::<i64, _>("n")).transpose()?.map_or(0, |n| u64::try_from(n).unwrap_or(0))
        }
    })
}

/// Inserts many jobs due now in one statement, re-arming those whose dedupe
/// key belongs to a finished job (see [`REARM_FINISHED`]) and leaving those
/// whose job is still PENDING or RUNNING; returns the image of each job
/// inserted or re-armed. Work that is redone on request (a regeneration)
/// thus has one row per image and kind, and is never queued twice.
///
/// # Errors
/// The database failed, or a payload could not be serialised.
pub async fn insert_or_rearm_many<'c, E: Executor<'c, Database = Any>>(
    exec: E,
    backend: Backend,
    jobs: &[NewJob],
    max_attempts: i64,
    now: Millis,
) -> DbResult<Vec<Option<ImageId>>> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(sqlx::AssertSqlSafe(insert_many_sql(backend, REARM_FINISHED)))
        .bind(bulk_rows(jobs)?)
        .bind(max_attempts)
        .bind(now.get())
        .fetch_all(exec)
        .await?;
    Ok(rows
        .iter()
        .map(|r| Ok(r.try_get::<Option<String>, _>("image_id")?.map(ImageId::from)))
        .collect::<Result<_, sqlx::Error>>()?)
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

/// A page of jobs, newest first (by id), and how many match in all.
///
/// The total of a status and/or type filter comes from `job_count`; an
/// image's jobs are counted from its index. A page after a cursor (the id
/// of the last job of the page before) seeks to it in the primary key; a
/// page past the middle of the list, without a cursor, is read from the
/// other end (`ORDER BY id` with the mirrored offset), so the last pages
/// cost what the first ones do.
///
/// # Errors
/// The database failed.
pub async fn list(pool: &AnyPool, filter: &JobFilter, window: &Window<JobId>) -> DbResult<Listed<Job>> {
    // Only the filters given. A status or type is written into the SQL (a
    // card name from the enum, never a client's text), so that PostgreSQL's
    // cached generic plan still sees `status = 'FAILED'` and reads the
    // partial index of that status, not the whole primary key.
    let mut conditions: Vec<String> =
        [("status", filter.status.map(JobStatus::as_str)), ("type", filter.kind.map(JobKind::as_str))]
            .into_iter()
            .filter_map(|(column, value)| value.map(|v| format!("{column} = '{v}'")))
            .collect();
    let image = filter.image_id.as_ref().map(ImageId::as_str);
    let total: i64 = if let Some(image) = image {
        // An image has a handful of jobs: counted from its index.
        conditions.push("image_id = $1".to_owned());
        let sql = format!("SELECT COUNT(*) AS n FROM job{}", where_clause(&conditions));
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(image).fetch_one(pool).await?.try_get("n")?
    } else {
        let sql =
            format!("SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) AS n FROM job_count{}", where_clause(&conditions));
        sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_one(pool).await?.try_get("n")?
    };
    let bound = usize::from(image.is_some());
    if window.after.is_some() {
        conditions.push(format!("id < ${}", bound + 1));
    }
    let plan = window.plan(total);
    let sql = format!(
        "SELECT {COLUMNS} FROM job{} ORDER BY id {} LIMIT {} OFFSET {}",
        where_clause(&conditions),
        plan.order("DESC", "ASC"),
        plan.limit,
        plan.offset
    );
    let mut page = sqlx::query(sqlx::AssertSqlSafe(sql));
    if let Some(image) = image {
        page = page.bind(image);
    }
    if let Some(after) = window.after {
        page = page.bind(after.get());
    }
    let rows = page.fetch_all(pool).await?;
    let jobs = rows.iter().map(job_from_row).collect::<Result<Vec<_>, _>>()?;
    Ok(plan.listed(jobs, total))
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
pub async fn for_images<'c, E: Executor<'c, Database = Any>>(exec: E, image_ids: &[&ImageId]) -> DbResult<Vec<Job>> {
    if image_ids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders = (1..=image_ids.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
    let sql = format!("SELECT {COLUMNS} FROM job WHERE image_id IN ({placeholders}) ORDER BY id");
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in image_ids {
        query = query.bind(id.as_str());
    }
    let rows = query.fetch_all(exec).await?;
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

/// How the jobs a pruning pass deletes ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// COMPLETED or CANCELLED.
    CompletedOrCancelled,
    /// FAILED.
    Failed,
}

impl Ended {
    /// The statuses, as SQL literals (a literal keeps PostgreSQL's cached
    /// plan on the `job_finished` index).
    fn statuses(self) -> &'static str {
        match self {
            Ended::CompletedOrCancelled => "('COMPLETED', 'CANCELLED')",
            Ended::Failed => "('FAILED')",
        }
    }
}

/// Deletes up to `batch` jobs that ended as `ended` in `[from, before)`,
/// oldest first (found through `job_finished`, so the statement costs the
/// batch, not the table). Returns how many it deleted and the latest end
/// among them: the next batch starts there, so that it does not walk again
/// the index entries this one left behind (PostgreSQL keeps them until a
/// vacuum).
///
/// # Errors
/// The database failed.
pub async fn prune_finished<'c, E: Executor<'c, Database = Any>>(
    exec: E,
    ended: Ended,
    from: Millis,
    before: Millis,
    batch: i64,
) -> DbResult<(u64, Option<Millis>)> {
    let sql = format!(
        "DELETE FROM job WHERE id IN (SELECT id FROM job WHERE finished_at >= $1 AND finished_at < $2 \
                                        AND status IN {} ORDER BY finished_at LIMIT $3) \
         RETURNING finished_at",
        ended.statuses()
    );
    let rows =
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(from.get()).bind(before.get()).bind(batch).fetch_all(exec).await?;
    let latest =
        rows.iter().map(|r| r.try_get::<i64, _>("finished_at")).collect::<Result<Vec<_>, _>>()?.into_iter().max();
    Ok((rows.len() as u64, latest.map(Millis)))
}

/// On PostgreSQL, moves the counts of connections that ended into this
/// connection's own rows (`job_count` and `image_count` keep one row per
/// connection, so that writers never wait on each other's counters), so
/// that the tables stay as small as the pool; nothing on SQLite (one slot).
///
/// # Errors
/// The database failed.
pub async fn fold_counts<'c, E: Executor<'c, Database = Any>>(exec: E, backend: Backend) -> DbResult<()> {
    if backend == Backend::Postgres {
        sqlx::query(
            "WITH gone_jobs AS (DELETE FROM job_count WHERE slot <> pg_backend_pid() \
                                  AND slot NOT IN (SELECT pid FROM pg_stat_activity WHERE pid IS NOT NULL) \
                                RETURNING status, type, n), \
                  kept_jobs AS (INSERT INTO job_count AS c (status, type, slot, n) \
                                SELECT status, type, pg_backend_pid(), SUM(n) FROM gone_jobs GROUP BY status, type \
                                ON CONFLICT (status, type, slot) DO UPDATE SET n = c.n + EXCLUDED.n RETURNING 1), \
                  gone_images AS (DELETE FROM image_count WHERE slot <> pg_backend_pid() \
                                  AND slot NOT IN (SELECT pid FROM pg_stat_activity WHERE pid IS NOT NULL) \
                                  RETURNING collection, status, n) \
             INSERT INTO image_count AS c (collection, status, slot, n) \
             SELECT collection, status, pg_backend_pid(), SUM(n) FROM gone_images GROUP BY collection, status \
             ON CONFLICT (collection, status, slot) DO UPDATE SET n = c.n + EXCLUDED.n",
        )
        .execute(exec)
        .await?;
    }
    Ok(())
}

/// Every job changed after `since`, for the event stream's poll. A job
/// that changes is PENDING or RUNNING after the change, or has just ended
/// (`finished_at` is set with every ending and cleared by every return to
/// the queue): three index ranges, none growing with the finished jobs kept.
///
/// # Errors
/// The database failed.
pub async fn changed_since(pool: &AnyPool, since: Millis) -> DbResult<Vec<Job>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM job WHERE status = 'PENDING' AND updated_at > $1 \
         UNION ALL SELECT {COLUMNS} FROM job WHERE status = 'RUNNING' AND updated_at > $1 \
         UNION ALL SELECT {COLUMNS} FROM job WHERE finished_at > $1 AND updated_at > $1"
    )))
    .bind(since.get())
    .fetch_all(pool)
    .await?;
    Ok(rows.iter().map(job_from_row).collect::<Result<_, _>>()?)
}

/// `(status, type, count)` of every job, for the admin page's counts and
/// the metrics: read from `job_count`, not counted.
///
/// # Errors
/// The database failed.
pub async fn counts_by_status_and_type(pool: &AnyPool) -> DbResult<Vec<(String, String, i64)>> {
    let rows = sqlx::query("SELECT status, type, CAST(SUM(n) AS BIGINT) AS n FROM job_count GROUP BY status, type")
        .fetch_all(pool)
        .await?;
    Ok(rows
        .iter()
        .map(|r| Ok((r.try_get("status")?, r.try_get("type")?, r.try_get("n")?)))
        .collect::<Result<_, sqlx::Error>>()?)
}

/// How many jobs ended COMPLETED or FAILED in each minute since `since`:
/// `(minute, status, count)`, minute 0 starting at `since`, for the admin
/// page's chart. Read from `job_finished` alone (the last hour's entries).
///
/// # Errors
/// The database failed.
pub async fn finished_per_minute(pool: &AnyPool, since: Millis) -> DbResult<Vec<(i64, String, i64)>> {
    let rows = sqlx::query(
        "SELECT (finished_at - $1) / 60000 AS minute, status, COUNT(*) AS n FROM job \
         WHERE finished_at > $1 AND status IN ('COMPLETED', 'FAILED') GROUP BY 1, 2",
    )
    .bind(since.get())
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| Ok((r.try_get("minute")?, r.try_get("status")?, r.try_get("n")?)))
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
