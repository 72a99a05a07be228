//! Batched queue writes on a real database: bare successes completed by the
//! completer's one lease-checked statement, bulk enqueue, and a runner
//! draining effect-free jobs and stopping with none left RUNNING.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::time::Duration;

use pictor::clock::{Clock, LeaseTime, Millis};
use pictor::db::{self, jobs::JobFilter, leases::Claim};
use pictor::handlers::{ImageEffect, Outcome};
use pictor::queue::completer::{Completer, Ending, Finished};
use pictor::queue::handler::{HandlerError, JobHandler, Registry};
use pictor::queue::rescuer;
use pictor::queue::retry::RetryPolicy;
use pictor::queue::runner::{Runner, RunnerSettings};
use pictor::queue::{Job, JobId, NewJob};
use pictor::shutdown;
use pictor_client::models::{JobKind, JobStatus};
use tokio::sync::Notify;

use crate::helpers::{Backend, CLOCK_START, ClockedApp, clocked_app};

const T0: Millis = CLOCK_START;
const LEASE_MS: i64 = 30_000;
const LEASE: Duration = Duration::from_millis(30_000);

/// The module's queue helpers over a [`ClockedApp`].
struct Fixture(ClockedApp);

impl std::ops::Deref for Fixture {
    type Target = ClockedApp;

    fn deref(&self) -> &ClockedApp {
        &self.0
    }
}

async fn fixture(backend: Backend) -> Option<Fixture> {
    clocked_app(backend, |_| {}).await.map(Fixture)
}

/// An effect-free job of the bench's shape: no image, no dedupe key.
fn bare_job(i: usize) -> NewJob {
    NewJob {
        kind: JobKind::PreviewGeneration,
        payload: format!("{{\"i\":{i}}}"),
        image_id: None,
        priority: 0,
        dedupe_key: None,
    }
}

impl Fixture {
    fn db(&self) -> &db::Db {
        &self.app.db
    }

    /// Writes bare successes of the given jobs as `runner`, in one group.
    async fn complete_bare(&self, runner: &str, ids: &[JobId]) -> Vec<(JobId, Ending)> {
        let mut batch = Vec::new();
        for id in ids {
            batch.push(Finished {
                job: self.job(*id).await,
                result: Ok(Outcome::default()),
                elapsed: std::time::Duration::ZERO,
            });
        }
        let mut completer =
            Completer::new(self.app.queue.clone(), self.app.effects.clone(), runner.into(), RetryPolicy::default(), 10);
        let endings = completer.write(&batch).await.expect("write");
        ids.iter().copied().zip(endings).collect()
    }

    async fn enqueue(&self, count: usize) -> Vec<JobId> {
        let mut ids = Vec::new();
        for i in 0..count {
            let id = db::jobs::insert(&self.db().pool, self.db().backend, &bare_job(i), 5, self.clock.now())
                .await
                .expect("insert");
            ids.push(id.expect("inserted"));
        }
        ids
    }

    async fn claim(&self, runner: &str, limit: usize) -> Vec<JobId> {
        let now = self.clock.now();
        let claim = Claim { runner, limit, lease: LEASE, at: LeaseTime::At(now), together: &[] };
        let claimed = db::leases::claim(&self.db().pool, self.db().backend, claim).await.expect("claim");
        claimed.iter().map(|j| j.id).collect()
    }

    async fn job(&self, id: JobId) -> Job {
        db::jobs::get(&self.db().pool, id).await.expect("get").expect("exists")
    }

    async fn count(&self, status: JobStatus) -> i64 {
        let filter = JobFilter { status: Some(status), ..Default::default() };
        let window = db::Window { after: None, limit: 1, offset: 0 };
        db::jobs::list(&self.db().pool, &filter, &window).await.expect("list").total
    }
}

both_backends! {
    async fn batch_completion_completes_exactly_the_given_jobs(backend) {
        let Some(f) = fixture(backend).await else { return };
        let ids = f.enqueue(4).await;
        assert_eq!(f.claim("runner-a", 10).await.len(), 4);
        f.clock.advance(Duration::from_millis(7));

        let endings = f.complete_bare("runner-a", &ids[..3]).await;

        let completed = Ending::Completed { children: 0 };
        assert_eq!(endings, vec![(ids[0], completed), (ids[1], completed), (ids[2], completed)]);
        for id in &ids[..3] {
            let job = f.job(*id).await;
            assert_eq!(job.status, JobStatus::Completed);
            assert_eq!(job.finished_at, Some(T0.plus_ms(7)));
            assert_eq!(job.locked_until, None);
            assert_eq!(job.locked_by.as_deref(), Some("runner-a"), "who ran it stays visible");
        }
        let left = f.job(ids[3]).await;
        assert_eq!((left.status, left.finished_at), (JobStatus::Running, None), "a job not listed is untouched");
    }
}

both_backends! {
    async fn a_lost_lease_in_a_batch_writes_nothing_for_that_job(backend) {
        let Some(f) = fixture(backend).await else { return };
        let ids = f.enqueue(1).await;
        assert_eq!(f.claim("runner-a", 1).await, ids);
        // runner-a stalls past its lease; the job is rescued and runner-b takes it.
        f.clock.advance(Duration::from_millis(LEASE_MS.unsigned_abs() + 1));
        rescuer::rescue_once(&f.app.queue, &*f.app.effects).await.expect("rescue");
        assert_eq!(f.claim("runner-b", 1).await, ids);
        let before = f.job(ids[0]).await;
        // runner-a still holds a second job.
        let held = f.enqueue(1).await;
        assert_eq!(f.claim("runner-a", 1).await, held);
        f.clock.advance(Duration::from_millis(5));

        let endings = f.complete_bare("runner-a", &[ids[0], held[0]]).await;

        assert_eq!(endings, vec![(ids[0], Ending::LeaseLost), (held[0], Ending::Completed { children: 0 })]);
        assert_eq!(f.job(ids[0]).await, before, "runner-b's job is exactly as it was");
        assert_eq!(f.job(held[0]).await.status, JobStatus::Completed);
    }
}

both_backends! {
    async fn bulk_enqueue_inserts_every_job_and_skips_existing_dedupe_keys(backend) {
        let Some(f) = fixture(backend).await else { return };
        let queue = &f.app.queue;
        let mut jobs = (0..50).map(bare_job).collect::<Vec<_>>();
        jobs[0].dedupe_key = Some("once".into());
        let mut tx = queue.db.begin_write(db::Durability::Acknowledged).await.expect("begin");
        let inserted = queue.enqueue_many_in(&mut tx, &jobs).await.expect("bulk");
        tx.commit().await.expect("commit");
        assert_eq!(inserted, 50);

        let mut tx = queue.db.begin_write(db::Durability::Acknowledged).await.expect("begin");
        let again = queue.enqueue_many_in(&mut tx, &jobs[..1]).await.expect("bulk again");
        tx.commit().await.expect("commit");

        assert_eq!(again, 0, "the dedupe key exists already");
        assert_eq!(f.count(JobStatus::Pending).await, 50);
        let first = f.job(f.claim("r", 1).await[0]).await;
        assert_eq!((first.kind, first.payload.as_str(), first.max_attempts), (JobKind::PreviewGeneration, "{\"i\":0}", 5));
    }
}

both_backends! {
    async fn a_single_enqueue_commits_on_its_own_and_skips_an_existing_dedupe_key(backend) {
        let Some(f) = fixture(backend).await else { return };
        let queue = &f.app.queue;
        let mut job = bare_job(7);
        job.dedupe_key = Some("single".into());

        let id = queue.enqueue(&job).await.expect("enqueue").expect("a new job");
        let again = queue.enqueue(&job).await.expect("enqueue again");

        assert_eq!(again, None, "the dedupe key exists already");
        assert_eq!(f.count(JobStatus::Pending).await, 1);
        let claimed = f.claim("r", 5).await;
        assert_eq!(claimed, vec![id]);
        assert_eq!(f.job(id).await.payload, "{\"i\":7}");
    }
}

/// Counts runs, signals when `target` is reached, commits nothing else.
struct Counting {
    ran: AtomicUsize,
    target: usize,
    all_ran: Notify,
}

/// The handler over a shared [`Counting`].
struct CountingHandler(Arc<Counting>);

#[async_trait::async_trait]
impl JobHandler<ImageEffect> for CountingHandler {
    async fn handle(&self, _job: &Job) -> Result<Outcome, HandlerError> {
        if self.0.ran.fetch_add(1, Ordering::SeqCst) + 1 == self.0.target {
            self.0.all_ran.notify_one();
        }
        Ok(Outcome::default())
    }
}

both_backends! {
    async fn a_runner_completes_effect_free_jobs_in_batches_and_leaves_none_running_at_shutdown(backend) {
        let Some(f) = fixture(backend).await else { return };
        let queue = &f.app.queue;
        let jobs = (0..300).map(bare_job).collect::<Vec<_>>();
        let mut tx = queue.db.begin_write(db::Durability::Acknowledged).await.expect("begin");
        queue.enqueue_many_in(&mut tx, &jobs).await.expect("bulk");
        tx.commit().await.expect("commit");
        let counting = Arc::new(Counting { ran: AtomicUsize::new(0), target: jobs.len(), all_ran: Notify::new() });
        let mut registry = Registry::default();
        registry.register(JobKind::PreviewGeneration, CountingHandler(counting.clone()));
        let settings = RunnerSettings { batch_size: 40, concurrency: 25, completion_batch: 16, ..Default::default() };
        let runner = Runner::new(queue.clone(), f.app.effects.clone(), registry, settings);
        let (trigger, shutdown) = shutdown::channel();
        let task = tokio::spawn(runner.run(shutdown));

        counting.all_ran.notified().await;
        // Stopping writes the completer's backlog before the runner returns.
        trigger.trigger();
        task.await.expect("runner task").expect("runner stops cleanly");

        assert_eq!(counting.ran.load(Ordering::SeqCst), jobs.len(), "each job ran once");
        assert_eq!(f.count(JobStatus::Completed).await, 300);
        assert_eq!(f.count(JobStatus::Running).await + f.count(JobStatus::Pending).await, 0);
        let window = db::Window { after: None, limit: 1_000, offset: 0 };
        let all = db::jobs::list(&f.db().pool, &JobFilter::default(), &window).await.expect("list").rows;
        assert!(all.iter().all(|j| j.attempts == 1), "no job was claimed twice");
    }
}

#[tokio::test]
async fn on_postgres_an_enqueue_notifies_the_runners_once_committed_and_a_deduplicated_one_does_not() {
    let Some(f) = fixture(Backend::Postgres).await else { return };
    let queue = &f.app.queue;
    let mut listener = sqlx::postgres::PgListener::connect(queue.db.url()).await.expect("listener");
    listener.listen(db::jobs::NOTIFY_CHANNEL).await.expect("listen");
    let job = NewJob { dedupe_key: Some("once".into()), ..bare_job(0) };

    let mut tx = queue.db.begin_write(db::Durability::Acknowledged).await.expect("begin");
    assert!(queue.enqueue_in(&mut tx, &job).await.expect("enqueue").is_some());
    let early = tokio::time::timeout(std::time::Duration::from_millis(200), listener.recv()).await;
    assert!(early.is_err(), "no notice before the commit");
    tx.commit().await.expect("commit");
    listener.recv().await.expect("a notice once committed");

    let mut tx = queue.db.begin_write(db::Durability::Acknowledged).await.expect("begin");
    assert!(queue.enqueue_in(&mut tx, &job).await.expect("enqueue again").is_none(), "deduplicated");
    tx.commit().await.expect("commit");
    let dup = tokio::time::timeout(std::time::Duration::from_millis(200), listener.recv()).await;
    assert!(dup.is_err(), "no notice for a job that was not inserted");
}

/// Sequential scans of `job` so far in the transaction `tx` is in.
async fn job_seq_scans(tx: &mut sqlx::AnyConnection) -> i64 {
    let row: (i64,) = sqlx::query_as("SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relname = 'job'")
        .fetch_one(tx)
        .await
        .expect("the transaction's table statistics");
    row.0
}

// The batch completion and the lease renewal reach each listed job through
// its primary key whatever the planner's statistics say: here on a table
// never analyzed, where joining the lease list as rows planned a sequential
// scan of `job` (350 ms for 500 completions in the queue bench) or a nested
// loop over the runner's RUNNING jobs.
#[tokio::test]
async fn on_postgres_batch_completions_and_renewals_scan_no_table_whatever_its_statistics() {
    let Some(f) = fixture(Backend::Postgres).await else { return };
    let db = f.db();
    let jobs: Vec<NewJob> = (0..5_000).map(bare_job).collect();
    let mut tx = db.begin_write(db::Durability::Acknowledged).await.expect("begin");
    assert_eq!(f.app.queue.enqueue_many_in(&mut tx, &jobs).await.expect("enqueue"), 5_000);
    tx.commit().await.expect("commit");
    let claim = Claim { runner: "runner", limit: 600, lease: LEASE, at: LeaseTime::At(f.clock.now()), together: &[] };
    let claimed = db::leases::claim(&db.pool, db.backend, claim).await.expect("claim");
    let leases: Vec<_> = claimed.iter().map(Job::lease).collect();
    assert_eq!(leases.len(), 600);

    let mut tx = db.begin_write(db::Durability::Bookkeeping).await.expect("begin");
    let completed = db::leases::complete_many(&mut *tx, db.backend, &leases[..500], "runner", f.clock.now())
        .await
        .expect("complete");
    let after_completion = job_seq_scans(&mut tx).await;
    let renewed =
        db::leases::extend_leases(&mut *tx, db.backend, "runner", &leases[500..], LEASE, f.clock.lease_time())
            .await
            .expect("renew");
    let after_renewal = job_seq_scans(&mut tx).await;
    tx.commit().await.expect("commit");

    assert_eq!((completed.len(), renewed), (500, 100));
    assert_eq!(
        (after_completion, after_renewal),
        (0, 0),
        "sequential scans of job by the completion, then the renewal"
    );
}
