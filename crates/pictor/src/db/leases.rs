//! SQL of a job's life between its claim and its ending: claim, lease
//! renewal, completion (one or a batch), retry, failure, and giving jobs
//! back (rescue, release). Every write to a running job checks the lease in
//! one place, [`held_by_runner!`]: still RUNNING, held by this runner, under
//! the token of this execution's claim. Leases are judged on one clock, the
//! database's (DESIGN invariant 8).

use std::time::Duration;

use sqlx::{Any, AnyConnection, Executor, Row};

use super::jobs::{Job, JobId, Lease, LeaseId, decode_err, job_from_row};
use super::{Backend, Db, DbResult, Durability, ImageId};
use crate::clock::{LeaseTime, Millis};
use pictor_client::models::{JobKind, JobStatus};

/// The lease check of every write to a running job (DESIGN invariant 8):
/// the job is still RUNNING, held by the runner bound as `$1`, under the
/// lease token given (a placeholder or a column). A runner that lost its
/// lease cannot overwrite another execution's result, even its own later
/// one of the same job.
macro_rules! held_by_runner {
    // Whatever claim the lease came from: only for a runner giving back all it holds.
    (any) => {
        "status = 'RUNNING' AND locked_by = $1"
    };
    ($lease:literal) => {
        concat!(held_by_runner!(any), " AND lease_id = ", $lease)
    };
    // Of a job in a bound list of leases, with the status check written as
    // [`held_leases!`] says.
    (listed: $backend:ident, $ids:literal, $keys:literal) => {
        concat!(held_leases!($backend, $ids, $keys), " AND locked_by = $1")
    };
}

/// An update of the one job `runner` holds under a lease: `SET $set`, the
/// lease check on `$1`–`$3` ([`on_held_job`] binds them), its own values
/// from `$4`.
macro_rules! update_held_job {
    ($set:literal) => {
        concat!("UPDATE job SET ", $set, " WHERE ", held_by_runner!("$2"), " AND id = $3")
    };
}

/// The query of an [`update_held_job!`] statement with its lease check
/// bound: the runner, the lease token and the job.
fn on_held_job<'q>(
    sql: &'static str,
    runner: &'q str,
    lease: Lease,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments> {
    sqlx::query(sql).bind(runner).bind(lease.id.map(|l| l.0)).bind(lease.job.get())
}

/// Now as leases are judged: the time bound at the placeholder where a
/// test's hand-turned clock gives one ([`LeaseTime::At`]), else the
/// database's own clock, the one clock every host shares.
macro_rules! judged_now {
    (sqlite, $at:literal) => {
        concat!("COALESCE(CAST(", $at, " AS BIGINT), CAST(unixepoch('subsec') * 1000 AS INTEGER))")
    };
    (postgres, $at:literal) => {
        concat!("COALESCE(CAST(", $at, " AS BIGINT), CAST(extract(epoch FROM statement_timestamp()) * 1000 AS BIGINT))")
    };
}

/// The kinds a claim takes together, bound as one JSON array of names (one
/// prepared statement whatever the list), per backend.
macro_rules! together {
    (sqlite, $json:literal) => {
        concat!("(SELECT value FROM json_each(", $json, "))")
    };
    (postgres, $json:literal) => {
        concat!("(SELECT jsonb_array_elements_text(CAST(", $json, " AS JSONB)))")
    };
}

/// On PostgreSQL, a picked job of a kind taken together must also win its
/// image's transaction-level advisory lock: two claims started by the same
/// notice would otherwise each pick one job of a pair (each skipping the
/// row the other locked) and split it. The one that loses skips the whole
/// image; the lock ends with the claim's transaction. Its class,
/// 1885954932 ("pict"), is in the two-key space, apart from the originals'
/// one-key locks. SQLite has one writer: no concurrent claim to keep apart.
macro_rules! claim_guard {
    (sqlite) => {
        ""
    };
    (postgres) => {
        concat!(
            " AND CASE WHEN image_id IS NOT NULL AND type IN ",
            together!(postgres, "$6"),
            " THEN pg_try_advisory_xact_lock(1885954932, hashtext(image_id)) ELSE true END"
        )
    };
}

/// The claim: one statement picks due jobs (`picked`), takes with each one
/// of a kind listed in `$6` the other due PENDING jobs of its image of
/// those kinds (`siblings`: an image's thumbnail and preview jobs, so that
/// one process decodes the original once for both), marks them all
/// RUNNING with a lease (`$2` ms from now, under the token `$5`), counts
/// the attempt and returns them. `$4` limits the picked jobs; siblings come
/// on top (an image has one job of each kind, by its dedupe key: at most
/// one more per picked job for the thumbnail and preview pair), so a
/// sibling never takes the place of a job of higher priority. A sibling
/// not yet due (a retry's backoff) is left. On PostgreSQL `SKIP
/// LOCKED` keeps concurrent claimers off each other's rows, siblings
/// included; SQLite has one writer anyway. Both CTEs are `MATERIALIZED` so
/// that each runs once, before the update. A list of ids is read as `$in`
/// `(SELECT …)` `$end`: on PostgreSQL as one array (an init plan), so that
/// the plan stays index scans whatever the backlog (the siblings through
/// `job_image`), including the generic plan [`claimer`] makes PostgreSQL keep.
macro_rules! claim_sql {
    ($backend:ident, in: $in:literal, end: $end:literal, lock: $lock:literal, then: $then:literal) => {
        concat!(
            "WITH picked AS MATERIALIZED (SELECT id, type, image_id FROM job WHERE status = 'PENDING' AND run_at <= ",
            judged_now!($backend, "$3"),
            claim_guard!($backend),
            " ORDER BY priority DESC, run_at, id LIMIT $4",
            $lock,
            "), siblings AS MATERIALIZED (SELECT id FROM job WHERE status = 'PENDING' AND run_at <= ",
            judged_now!($backend, "$3"),
            " AND type IN ",
            together!($backend, "$6"),
            " AND image_id ",
            $in,
            "(SELECT image_id FROM picked WHERE type IN ",
            together!($backend, "$6"),
            ")",
            $end,
            " AND id NOT IN (SELECT id FROM picked)",
            $lock,
            ") UPDATE job SET status = 'RUNNING', attempts = attempts + 1, locked_by = $1, lease_id = $5, \
             locked_until = ",
            judged_now!($backend, "$3"),
            " + $2, updated_at = ",
            judged_now!($backend, "$3"),
            " WHERE id ",
            $in,
            "(SELECT id FROM picked UNION ALL SELECT id FROM siblings)",
            $end,
            $then,
            " RETURNING id, type, status, payload, image_id, priority, attempts, max_attempts, run_at, \
             locked_by, locked_until, lease_id, last_error, created_at, updated_at, finished_at"
        )
    };
}
const CLAIM_SQLITE: &str = claim_sql!(sqlite, in: "IN ", end: "", lock: "", then: "");
/// The PostgreSQL claim, whose own (implicit) transaction does not wait for
/// its WAL flush: `set_config(..., true)` sets `synchronous_commit = off` for
/// that transaction only. A claim need not survive a server crash: a lost
/// claim leaves the job PENDING with its attempt uncounted, and the
/// completion then finds no lease and writes nothing, so the job just runs
/// again (at-least-once, DESIGN "The queue"; the rest of the queue's
/// bookkeeping makes the same choice, [`Durability::Bookkeeping`]). One
/// round trip, no fsync wait.
const CLAIM_POSTGRES: &str = claim_sql!(postgres, in: "= ANY(ARRAY", end: ")", lock: " FOR UPDATE SKIP LOCKED",
    then: " AND set_config('synchronous_commit', 'off', true) IS NOT NULL");

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
    /// How long the lease lasts.
    pub lease: Duration,
    /// The clock the claim is judged on: jobs due by then are taken.
    pub at: LeaseTime,
    /// Kinds whose due jobs of one image are claimed together: a picked
    /// job of one of them brings its image's other PENDING jobs of these
    /// kinds along, beyond `limit` (empty: none).
    pub together: &'a [JobKind],
}

/// A duration as milliseconds bound to SQL.
fn ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Claims due jobs as `claim` asks, highest priority first, under a fresh
/// lease token. `exec` must not be inside a transaction (the claim is its
/// own).
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
    // Random, so that no other claim of these jobs, by any runner, in any
    // process, before or after a database crash lost some commits, draws it.
    let lease = LeaseId(fastrand::i64(1..));
    // One statement in its own transaction: on SQLite it takes the write
    // lock when it starts, so it cannot deadlock upgrading a read lock.
    let rows = sqlx::query(sql)
        .bind(claim.runner)
        .bind(ms(claim.lease))
        .bind(claim.at.fixed().map(Millis::get))
        .bind(i64::try_from(claim.limit).unwrap_or(i64::MAX))
        .bind(lease.0)
        .bind(kinds_json(claim.together))
        .fetch_all(exec)
        .await?;
    let mut jobs = rows.iter().map(job_from_row).collect::<Result<Vec<_>, _>>()?;
    jobs.sort_by_key(|j| (-j.priority, j.run_at, j.id));
    Ok(jobs)
}

/// Job kinds as one bound JSON array of their names.
fn kinds_json(kinds: &[JobKind]) -> String {
    let names = kinds.iter().map(|k| format!("\"{}\"", k.as_str())).collect::<Vec<_>>();
    format!("[{}]", names.join(","))
}

/// Leases bound as two texts, so that one prepared statement serves every
/// count: the jobs' ids (`$ids`) and the `"job:lease"` keys of the pairs
/// (`$keys`), per backend ([`LeaseList`]).
///
/// On PostgreSQL the ids are an array, so each job is reached through its
/// primary key (`id = ANY`), and the keys a JSONB object, so each job's
/// lease is looked up, not searched for (`?`, an init plan parses it once).
/// The status is written `status || ''` so that no index matches it: from
/// a stale estimate of one RUNNING job, PostgreSQL otherwise scans the
/// runner's RUNNING jobs and compares each with every listed lease,
/// quadratic in the leases (23.8 s for one renewal of 7,255 in the queue
/// bench, BENCHMARKS.md "Queue", 2026-12-07). With the list joined as rows
/// instead, a table never analyzed still planned a sequential scan (350 ms
/// for 500 completions): this form leaves the planner only the primary key.
///
/// On SQLite, whose planner reaches each listed id through the primary key
/// anyway, the keys are a JSON array searched as a set.
macro_rules! held_leases {
    (sqlite, $ids:literal, $keys:literal) => {
        concat!(
            "status = 'RUNNING' AND id IN (SELECT value FROM json_each(",
            $ids,
            ")) AND CAST(id AS TEXT) || ':' || CAST(lease_id AS TEXT) IN (SELECT value FROM json_each(",
            $keys,
            "))"
        )
    };
    (postgres, $ids:literal, $keys:literal) => {
        concat!(
            "status || '' = 'RUNNING' AND id = ANY(CAST(",
            $ids,
            " AS BIGINT[])) AND (SELECT CAST(",
            $keys,
            " AS JSONB)) ? (CAST(id AS TEXT) || ':' || CAST(lease_id AS TEXT))"
        )
    };
}

/// A list of leases as [`held_leases!`] binds it.
struct LeaseList {
    ids: String,
    keys: String,
}

impl LeaseList {
    fn new(backend: Backend, leases: &[Lease]) -> Self {
        let ids = leases.iter().map(|l| l.job.to_string()).collect::<Vec<_>>().join(",");
        // A lease without a token matches nothing, as `lease_id = NULL` would not.
        let keys = leases.iter().filter_map(|l| l.id.map(|LeaseId(id)| format!("\"{}:{id}\"", l.job)));
        match backend {
            Backend::Sqlite => {
                Self { ids: format!("[{ids}]"), keys: format!("[{}]", keys.collect::<Vec<_>>().join(",")) }
            }
            Backend::Postgres => Self {
                ids: format!("{{{ids}}}"),
                keys: format!("{{{}}}", keys.map(|k| format!("{k}:0")).collect::<Vec<_>>().join(",")),
            },
        }
    }
}

/// Lease renewal: `$2` ms from now for each listed lease still held.
macro_rules! extend_sql {
    ($backend:ident, $then:literal) => {
        concat!(
            "UPDATE job SET locked_until = ",
            judged_now!($backend, "$3"),
            " + $2, updated_at = ",
            judged_now!($backend, "$3"),
            " WHERE ",
            held_by_runner!(listed: $backend, "$4", "$5"),
            $then
        )
    };
}
const EXTEND_SQLITE: &str = extend_sql!(sqlite, "");
const EXTEND_POSTGRES: &str = extend_sql!(postgres, " AND set_config('synchronous_commit', 'off', true) IS NOT NULL");

/// Extends the given leases by `lease`, where `runner` still holds them;
/// returns how many. Only jobs still being worked on are extended, so one
/// whose completion could not be written is left to the rescuer.
///
/// # Errors
/// The database failed.
pub async fn extend_leases<'c, E: Executor<'c, Database = Any>>(
    exec: E,
    backend: Backend,
    runner: &str,
    leases: &[Lease],
    lease: Duration,
    at: LeaseTime,
) -> DbResult<u64> {
    if leases.is_empty() {
        return Ok(0);
    }
    let sql = match backend {
        Backend::Sqlite => EXTEND_SQLITE,
        Backend::Postgres => EXTEND_POSTGRES,
    };
    let listed = LeaseList::new(backend, leases);
    let done = sqlx::query(sql)
        .bind(runner)
        .bind(ms(lease))
        .bind(at.fixed().map(Millis::get))
        .bind(listed.ids)
        .bind(listed.keys)
        .execute(exec)
        .await?;
    Ok(done.rows_affected())
}

/// Completes many jobs at once, each under its own lease.
macro_rules! complete_many_sql {
    ($backend:ident, $then:literal) => {
        concat!(
            "UPDATE job SET status = 'COMPLETED', locked_until = NULL, finished_at = $2, updated_at = $2 WHERE ",
            held_by_runner!(listed: $backend, "$3", "$4"),
            $then,
            " RETURNING id, lease_id"
        )
    };
}
const COMPLETE_MANY_SQLITE: &str = complete_many_sql!(sqlite, "");
/// Bookkeeping, so without waiting for its WAL flush as the claim
/// ([`Durability::Bookkeeping`]), also when it is a statement on its own.
const COMPLETE_MANY_POSTGRES: &str =
    complete_many_sql!(postgres, " AND set_config('synchronous_commit', 'off', true) IS NOT NULL");

/// Marks the jobs `runner` still holds under the listed leases COMPLETED,
/// in one statement; returns the leases it completed. A listed lease
/// missing from the result was lost (or is an earlier execution's of a job
/// held again), and nothing was written for it.
///
/// # Errors
/// The database failed.
pub async fn complete_many<'c, E: Executor<'c, Database = Any>>(
    exec: E,
    backend: Backend,
    leases: &[Lease],
    runner: &str,
    now: Millis,
) -> DbResult<Vec<Lease>> {
    if leases.is_empty() {
        return Ok(Vec::new());
    }
    let sql = match backend {
        Backend::Sqlite => COMPLETE_MANY_SQLITE,
        Backend::Postgres => COMPLETE_MANY_POSTGRES,
    };
    let listed = LeaseList::new(backend, leases);
    let rows = sqlx::query(sql).bind(runner).bind(now.get()).bind(listed.ids).bind(listed.keys).fetch_all(exec).await?;
    let completed = rows
        .iter()
        .map(|r| Ok(Lease { job: JobId(r.try_get("id")?), id: r.try_get::<Option<i64>, _>("lease_id")?.map(LeaseId) }));
    Ok(completed.collect::<Result<_, sqlx::Error>>()?)
}

/// Whether a failed attempt counts against the job's `max_attempts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// It counts (the claim counted it).
    Spent,
    /// It is given back: the job failed for want of something outside it
    /// (a full disk), not because of itself.
    GivenBack,
}

/// Puts a job `runner` holds under `lease` back to PENDING until `run_at`,
/// keeping the error, with its attempt spent or given back. False when the
/// lease was lost.
///
/// # Errors
/// The database failed.
pub async fn retry_later<'c, E: Executor<'c, Database = Any>>(
    exec: E,
    lease: Lease,
    runner: &str,
    error: &str,
    run_at: Millis,
    now: Millis,
    attempt: Attempt,
) -> DbResult<bool> {
    let done = on_held_job(
        update_held_job!(
            "status = 'PENDING', locked_by = NULL, locked_until = NULL, last_error = $4, \
             run_at = $5, updated_at = $6, attempts = attempts - $7"
        ),
        runner,
        lease,
    )
    .bind(error)
    .bind(run_at.get())
    .bind(now.get())
    .bind(i64::from(attempt == Attempt::GivenBack))
    .execute(exec)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Ends a job `runner` holds under `lease` FAILED with its error. False
/// when the lease was lost.
///
/// # Errors
/// The database failed.
pub async fn fail<'c, E: Executor<'c, Database = Any>>(
    exec: E,
    lease: Lease,
    runner: &str,
    error: &str,
    now: Millis,
) -> DbResult<bool> {
    let done = on_held_job(
        update_held_job!("status = 'FAILED', locked_until = NULL, last_error = $4, finished_at = $5, updated_at = $5"),
        runner,
        lease,
    )
    .bind(error)
    .bind(now.get())
    .execute(exec)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A job given back to the queue, and where to.
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

/// Gives jobs back to the queue: PENDING to run again, or FAILED when out of
/// attempts (DESIGN invariant 4), with the error bound at `error` as their
/// last error. The attempt they were in counts, however it ended: a job
/// that hangs or crashes its runner ends FAILED after its attempts, whatever
/// restarts happen meanwhile.
macro_rules! give_back_sql {
    ($backend:ident, error: $error:literal, at: $at:literal, which: $which:expr) => {
        concat!(
            "UPDATE job SET \
                status = CASE WHEN attempts >= max_attempts THEN 'FAILED' ELSE 'PENDING' END, \
                finished_at = CASE WHEN attempts >= max_attempts THEN ",
            judged_now!($backend, $at),
            " ELSE NULL END, locked_by = NULL, locked_until = NULL, last_error = ",
            $error,
            ", run_at = ",
            judged_now!($backend, $at),
            ", updated_at = ",
            judged_now!($backend, $at),
            " WHERE ",
            $which,
            " RETURNING id, type, image_id, status"
        )
    };
}
/// Every RUNNING job whose lease ended.
macro_rules! rescue_sql {
    ($backend:ident) => {
        give_back_sql!($backend, error: "$1", at: "$2",
            which: concat!("status = 'RUNNING' AND locked_until < ", judged_now!($backend, "$2")))
    };
}
const RESCUE_SQLITE: &str = rescue_sql!(sqlite);
const RESCUE_POSTGRES: &str = rescue_sql!(postgres);
const RELEASE_SQLITE: &str = give_back_sql!(sqlite, error: "$2", at: "$3", which: held_by_runner!(any));
const RELEASE_POSTGRES: &str = give_back_sql!(postgres, error: "$2", at: "$3", which: held_by_runner!(any));

/// Which jobs [`give_back`] returns.
#[derive(Debug, Clone, Copy)]
pub enum GiveBack<'a> {
    /// Every RUNNING job whose lease ended (the rescuer's).
    Expired,
    /// Every job this runner holds (a runner stopping).
    HeldBy(&'a str),
}

/// Returns the jobs `which` selects to PENDING, or to FAILED when they are
/// out of attempts, keeping their attempts; returns what moved where.
///
/// # Errors
/// The database failed.
pub async fn give_back<'c, E: Executor<'c, Database = Any>>(
    exec: E,
    backend: Backend,
    which: GiveBack<'_>,
    error: &str,
    at: LeaseTime,
) -> DbResult<Vec<Rescued>> {
    let query = match (which, backend) {
        (GiveBack::Expired, Backend::Sqlite) => sqlx::query(RESCUE_SQLITE),
        (GiveBack::Expired, Backend::Postgres) => sqlx::query(RESCUE_POSTGRES),
        (GiveBack::HeldBy(runner), Backend::Sqlite) => sqlx::query(RELEASE_SQLITE).bind(runner),
        (GiveBack::HeldBy(runner), Backend::Postgres) => sqlx::query(RELEASE_POSTGRES).bind(runner),
    };
    let rows = query.bind(error).bind(at.fixed().map(Millis::get)).fetch_all(exec).await?;
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
