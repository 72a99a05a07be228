//! The queue on a real database with a hand-turned clock: claims, leases,
//! rescue, backoff, final failure, children enqueued once, and a runner
//! killed mid-job.

use std::time::Duration;

use std::sync::Arc;

use pictor::app::Overrides;
use pictor::clock::{Clock, LeaseTime, ManualClock, Millis};
use pictor::db::{self, images::NewImage, leases::Claim};
use pictor::handlers::payload::{ASSET_JOB_KINDS, ASSET_JOB_PRIORITY, OffloadPayload};
use pictor::handlers::{ImageEffect, Outcome};
use pictor::images::{ImageEffects, ImageId};
use pictor::queue::completer::{Completer, Ending, Finished};
use pictor::queue::handler::{HandlerError, JobHandler};
use pictor::queue::in_flight::InFlight;
use pictor::queue::rescuer;
use pictor::queue::retry::RetryPolicy;
use pictor::queue::{Job, JobId, NewJob};
use pictor::shutdown;
use pictor_client::models::{ImageStatus, JobKind, JobStatus};

use crate::helpers::{Backend, CLOCK_START, ClockedApp, clocked_app, spawn_app_on};

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

async fn fixture(backend: Backend, max_attempts: u32) -> Option<Fixture> {
    clocked_app(backend, |c| c.max_attempts = max_attempts).await.map(Fixture)
}

impl Fixture {
    fn db(&self) -> &db::Db {
        &self.app.db
    }

    fn queue(&self) -> &pictor::queue::Queue {
        &self.app.queue
    }

    /// A completer writing as `runner`, backing off by `retry`.
    fn completer(&self, runner: &str, retry: RetryPolicy) -> Completer<ImageEffects> {
        Completer::new(self.app.queue.clone(), self.app.effects.clone(), runner.into(), retry, 10)
    }

    /// Writes one attempt's ending as `runner` would.
    async fn end(&self, runner: &str, retry: RetryPolicy, job: &Job, result: Result<Outcome, HandlerError>) -> Ending {
        let finished = Finished { job: job.clone(), result, elapsed: std::time::Duration::ZERO };
        self.completer(runner, retry).write(&[finished]).await.expect("write the ending").remove(0)
    }

    async fn rescue(&self) -> Vec<db::leases::Rescued> {
        rescuer::rescue_once(self.queue(), &*self.app.effects).await.expect("rescue")
    }

    async fn image(&self, id: &str) -> NewImage {
        self.0.insert_image(id).await
    }

    async fn enqueue(&self, kind: JobKind, image_id: &str) -> JobId {
        let job = NewJob { kind, payload: "{}".into(), image_id: Some(image_id.into()), priority: 0, dedupe_key: None };
        db::jobs::insert(&self.db().pool, self.db().backend, &job, self.app.queue.max_attempts, self.clock.now())
            .await
            .expect("insert")
            .expect("inserted")
    }

    /// An offload of image `img` claimed by `runner`, its lease let lapse
    /// and rescued, then claimed again by the same runner: the job's id and
    /// its earlier and later executions.
    async fn re_claimed(&self, runner: &str) -> (JobId, Job, Job) {
        self.image("img").await;
        let id = self.enqueue(JobKind::OffloadOriginal, "img").await;
        let earlier = self.claim(runner, 1).await.remove(0);
        self.clock.advance_ms(LEASE_MS + 1);
        self.rescue().await;
        let later = self.claim(runner, 1).await.remove(0);
        (id, earlier, later)
    }

    async fn claim(&self, runner: &str, limit: usize) -> Vec<Job> {
        let now = self.clock.now();
        let claim = Claim { runner, limit, lease: LEASE, at: LeaseTime::At(now), together: &[] };
        db::leases::claim(&self.db().pool, self.db().backend, claim).await.expect("claim")
    }

    /// Inserts a job of `kind` for `image_id` at `priority`, due now.
    async fn enqueue_at_priority(&self, kind: JobKind, image_id: &str, priority: i64) -> JobId {
        let job = NewJob { kind, payload: "{}".into(), image_id: Some(image_id.into()), priority, dedupe_key: None };
        db::jobs::insert(&self.db().pool, self.db().backend, &job, self.app.queue.max_attempts, self.clock.now())
            .await
            .expect("insert")
            .expect("inserted")
    }

    /// Claims as a runner of the service does: an image's asset jobs together.
    async fn claim_assets_together(&self, runner: &str, limit: usize) -> Vec<Job> {
        let at = LeaseTime::At(self.clock.now());
        let claim = Claim { runner, limit, lease: LEASE, at, together: &ASSET_JOB_KINDS };
        db::leases::claim(&self.db().pool, self.db().backend, claim).await.expect("claim")
    }

    async fn job(&self, id: JobId) -> Job {
        db::jobs::get(&self.db().pool, id).await.expect("get").expect("exists")
    }
}

/// Moves a hand-turned clock by milliseconds.
trait AdvanceMs {
    fn advance_ms(&self, ms: i64);
}

impl AdvanceMs for ManualClock {
    fn advance_ms(&self, ms: i64) {
        self.advance(Duration::from_millis(u64::try_from(ms).expect("forward")));
    }
}

both_backends! {
    async fn a_claim_marks_jobs_running_with_a_lease_and_counts_the_attempt(backend) {
        let Some(f) = fixture(backend, 5).await else { return };
        f.image("img").await;
        let id = f.enqueue(JobKind::OffloadOriginal, "img").await;
        let claimed = f.claim("runner-a", 10).await;
        assert_eq!(claimed.iter().map(|j| j.id).collect::<Vec<_>>(), vec![id]);
        let job = &claimed[0];
        assert_eq!((job.status, job.attempts), (JobStatus::Running, 1));
        assert_eq!(job.locked_by.as_deref(), Some("runner-a"));
        assert_eq!(job.locked_until, Some(T0.plus_ms(LEASE_MS)));
        assert!(
            f.claim("runner-b", 10).await.is_empty(),
            "a running job is not claimed again"
        );
    }
}

both_backends! {
    // Claimers interleaved on one pool. On PostgreSQL their statements run at
    // once in separate server backends, so this is a real race (and the test
    // below forces its worst case). SQLite has a single writer: its claims are
    // serialised, so the SQLite half only checks that interleaved claims never
    // hand out a job twice; it cannot race.
    async fn two_runners_claiming_at_once_never_take_the_same_job(backend) {
        let Some(f) = fixture(backend, 5).await else { return };
        f.image("img").await;
        let mut all = Vec::new();
        for _ in 0..150 {
            all.push(f.enqueue(JobKind::PreviewGeneration, "img").await);
        }
        let claim_all = |name: &'static str| {
            let db = f.db().clone();
            let now = f.clock.now();
            async move {
                let mut mine = Vec::new();
                loop {
                    let claim = Claim { runner: name, limit: 7, lease: LEASE, at: LeaseTime::At(now), together: &[] };
                    let batch = db::leases::claim(&db.pool, db.backend, claim).await.expect("claim");
                    if batch.is_empty() {
                        return mine;
                    }
                    mine.extend(batch.into_iter().map(|j| j.id));
                    tokio::task::yield_now().await;
                }
            }
        };
        let (a, b) = tokio::join!(tokio::spawn(claim_all("a")), tokio::spawn(claim_all("b")));
        let (a, b) = (a.expect("a"), b.expect("b"));
        let mut claimed: Vec<JobId> = a.iter().chain(&b).copied().collect();
        claimed.sort_unstable();
        assert_eq!(
            claimed,
            all,
            "every job claimed exactly once (a: {}, b: {})",
            a.len(),
            b.len()
        );
    }
}

/// The claimers' race on PostgreSQL, made deterministic: another
/// transaction holds row locks on the first jobs in claim order, as a claim
/// in flight does, and a claim meanwhile takes the other jobs: it neither
/// takes a held row nor waits for it (`FOR UPDATE SKIP LOCKED`).
#[tokio::test]
async fn on_postgres_a_claim_skips_the_rows_a_concurrent_claim_holds() {
    let Some(f) = fixture(Backend::Postgres, 5).await else { return };
    f.image("img").await;
    let mut all = Vec::new();
    for _ in 0..10 {
        all.push(f.enqueue(JobKind::PreviewGeneration, "img").await.get());
    }
    let mut holder = f.db().pool.begin().await.expect("begin");
    let held: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM job WHERE status = 'PENDING' ORDER BY priority DESC, run_at, id LIMIT 4 FOR UPDATE",
    )
    .fetch_all(&mut *holder)
    .await
    .expect("hold rows");

    let claimed = tokio::time::timeout(Duration::from_secs(10), f.claim("b", 100))
        .await
        .expect("the claim waited on rows another claim holds");

    let mut claimed: Vec<i64> = claimed.iter().map(|j| j.id.get()).collect();
    claimed.sort_unstable();
    let free: Vec<i64> = all.iter().copied().filter(|id| !held.contains(id)).collect();
    assert_eq!(held.len(), 4);
    assert_eq!(claimed, free, "exactly the rows nobody holds");
    holder.rollback().await.expect("release");
    let mut rest: Vec<i64> = f.claim("c", 100).await.iter().map(|j| j.id.get()).collect();
    rest.sort_unstable();
    assert_eq!(rest, held, "the held rows are claimable once released");
}

both_backends! {
    async fn an_expired_lease_is_rescued_to_pending_and_a_held_one_is_not(backend) {
        let Some(f) = fixture(backend, 5).await else { return };
        f.image("img").await;
        let id = f.enqueue(JobKind::OffloadOriginal, "img").await;
        f.claim("crashed", 1).await;
        f.clock.advance_ms(LEASE_MS - 1);
        assert!(
            f.rescue().await.is_empty(),
            "lease still held"
        );
        f.clock.advance_ms(2);
        let rescued = f.rescue().await;
        assert_eq!(rescued.len(), 1);
        let job = f.job(id).await;
        assert_eq!(
            (job.status, job.attempts, job.locked_by.as_deref()),
            (JobStatus::Pending, 1, None)
        );
        assert!(
            job.last_error
                .as_deref()
                .is_some_and(|e| e.contains("lease expired"))
        );
        let again = f.claim("healthy", 1).await;
        assert_eq!((again[0].id, again[0].attempts), (id, 2));
    }
}

both_backends! {
    async fn a_rescued_job_out_of_attempts_fails_and_so_does_its_image(backend) {
        let Some(f) = fixture(backend, 1).await else { return };
        f.image("img").await;
        let id = f.enqueue(JobKind::OffloadOriginal, "img").await;
        f.claim("crashed", 1).await;
        f.clock.advance_ms(LEASE_MS + 1);
        f.rescue().await;
        assert_eq!(f.job(id).await.status, JobStatus::Failed);
        let image = db::images::get(&f.db().pool, &ImageId::from("img"))
            .await
            .expect("get")
            .expect("image");
        assert_eq!(image.status, ImageStatus::Failed);
        assert!(image.last_error.is_some());
    }
}

both_backends! {
    async fn retryable_failures_back_off_then_fail_the_job_and_image_after_max_attempts(backend) {
        let Some(f) = fixture(backend, 3).await else { return };
        f.image("img").await;
        let id = f.enqueue(JobKind::PreviewGeneration, "img").await;
        let policy = RetryPolicy {
            base_delay_ms: 1_000,
            max_delay_ms: 60_000,
            jitter: 0.0,
        };
        let mut delays = Vec::new();
        for attempt in 1..=3 {
            let job = f
                .claim("r", 1)
                .await
                .pop()
                .unwrap_or_else(|| panic!("attempt {attempt} claimable"));
            assert_eq!(job.attempts, attempt);
            let error = HandlerError::retryable("disk full");
            match f.end("r", policy, &job, Err(error)).await {
                Ending::Retrying { run_at } => {
                    delays.push(run_at.get() - f.clock.now().get());
                    assert!(
                        f.claim("r", 1).await.is_empty(),
                        "not due before its backoff"
                    );
                    f.clock.advance_ms(run_at.get() - f.clock.now().get());
                }
                Ending::Failed => assert_eq!(attempt, 3, "fails only when out of attempts"),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(delays, vec![1_000, 2_000], "exponential backoff");
        let job = f.job(id).await;
        assert_eq!(
            (job.status, job.last_error.as_deref()),
            (JobStatus::Failed, Some("disk full"))
        );
        let image = db::images::get(&f.db().pool, &ImageId::from("img"))
            .await
            .expect("get")
            .expect("image");
        assert_eq!(image.status, ImageStatus::Failed);
        assert!(
            image
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("PREVIEW_GENERATION failed: disk full"))
        );
    }
}

both_backends! {
    async fn a_job_waiting_for_space_spends_no_attempt_and_its_wait_grows_to_a_cap(backend) {
        let Some(f) = fixture(backend, 2).await else { return };
        f.image("img").await;
        let id = f.enqueue(JobKind::ThumbnailGeneration, "img").await;
        let policy = RetryPolicy { base_delay_ms: 1_000, max_delay_ms: 60_000, jitter: 0.0 };
        let mut completer = f.completer("r", policy);
        let mut waits = Vec::new();
        // Three times max_attempts: a full disk never fails the job.
        for _ in 0..6 {
            let job = f.claim("r", 1).await.pop().expect("claimable once its wait is over");
            assert_eq!(job.attempts, 1, "every claim finds the attempt given back");
            let full = HandlerError::unavailable("the storage is full");
            let finished = Finished { job, result: Err(full), elapsed: Duration::ZERO };
            match completer.write(&[finished]).await.expect("write").remove(0) {
                Ending::Waiting { run_at } => {
                    waits.push(run_at.get() - f.clock.now().get());
                    assert!(f.claim("r", 1).await.is_empty(), "not due before its wait is over");
                    f.clock.advance_ms(run_at.get() - f.clock.now().get());
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(waits, vec![1_000, 2_000, 4_000, 8_000, 16_000, pictor::queue::retry::MAX_WAIT_FOR_RESOURCE_MS]);
        let job = f.job(id).await;
        assert_eq!((job.status, job.attempts), (JobStatus::Pending, 0));
        assert_eq!(job.last_error.as_deref(), Some("the storage is full"), "the wait says why");

        let job = f.claim("r", 1).await.pop().expect("claimable");
        let ending = f.end("r", policy, &job, Ok(Outcome::default())).await;
        assert_eq!(ending, Ending::Completed { children: 0 });
        assert_eq!(f.job(id).await.attempts, 1, "the one attempt that did the work");
    }
}

both_backends! {
    async fn a_permanent_error_fails_at_once_without_retries(backend) {
        let Some(f) = fixture(backend, 5).await else { return };
        f.image("img").await;
        let id = f.enqueue(JobKind::ThumbnailGeneration, "img").await;
        let job = f.claim("r", 1).await.remove(0);
        let error = HandlerError::permanent("the JPEG data ends early");
        let ending = f.end("r", RetryPolicy::default(), &job, Err(error)).await;
        assert_eq!(ending, Ending::Failed);
        assert_eq!(f.job(id).await.attempts, 1);
    }
}

both_backends! {
    async fn children_are_enqueued_exactly_once_when_a_parent_is_re_run(backend) {
        let Some(f) = fixture(backend, 5).await else { return };
        f.image("img").await;
        let payload = OffloadPayload {
            image_id: "img".into(),
            temp_path: "tmp/img.upload".into(),
            checksum: "00".repeat(32),
        };
        let child = |kind| NewJob::for_image(kind, &ImageId::from("img"), &payload).expect("payload");
        let outcome = || Outcome {
            effects: vec![],
            children: vec![
                child(JobKind::ThumbnailGeneration),
                child(JobKind::PreviewGeneration),
            ],
        };
        // First run: lease lost to a second runner, which completes; then the
        // first runner's late completion must write nothing.
        let parent = f.enqueue(JobKind::OffloadOriginal, "img").await;
        let first = f.claim("slow", 1).await.remove(0);
        f.clock.advance_ms(LEASE_MS + 1);
        f.rescue().await;
        let second = f.claim("fast", 1).await.remove(0);
        assert_eq!(second.id, parent);
        assert_eq!(
            f.end("fast", RetryPolicy::default(), &second, Ok(outcome())).await,
            Ending::Completed { children: 2 }
        );
        assert_eq!(
            f.end("slow", RetryPolicy::default(), &first, Ok(outcome())).await,
            Ending::LeaseLost
        );
        // A re-run of the same parent (say, an operator enqueues it again) adds no second set.
        f.enqueue(JobKind::OffloadOriginal, "img").await;
        let rerun = f.claim("fast", 1).await.remove(0);
        assert_eq!(
            f.end("fast", RetryPolicy::default(), &rerun, Ok(outcome())).await,
            Ending::Completed { children: 0 }
        );

        let filter = db::jobs::JobFilter {
            image_id: Some("img".into()),
            ..Default::default()
        };
        let jobs = db::jobs::list(&f.db().pool, &filter, &db::Window { after: None, limit: 100, offset: 0 })
            .await
            .expect("list")
            .rows;
        let children = jobs
            .iter()
            .filter(|j| j.kind != JobKind::OffloadOriginal)
            .count();
        assert_eq!(children, 2);
    }
}

/// A handler that never returns: its runner "hangs" until killed.
struct Hang;

#[async_trait::async_trait]
impl JobHandler<ImageEffect> for Hang {
    async fn handle(&self, _job: &Job) -> Result<Outcome, HandlerError> {
        std::future::pending().await
    }
}

both_backends! {
    async fn a_runner_killed_mid_job_has_its_job_rescued_and_the_image_stored(backend) {
        // The HTTP app's own runner has a 1 s lease and standard handlers.
        let Some(app) = spawn_app_on(backend, |c| c.lock_timeout_secs = 1, Overrides::default(), false).await else { return };
        // A second runner on the same database hangs in OFFLOAD_ORIGINAL ...
        let mut hanging = pictor::handlers::registry(&app.app.handlers);
        hanging.register(JobKind::OffloadOriginal, Hang);
        let doomed = pictor::queue::runner::Runner::new(
            app.app.queue.clone(),
            app.app.effects.clone(),
            hanging,
            pictor::queue::runner::RunnerSettings {
                lock_timeout: Duration::from_secs(1),
                ..Default::default()
            },
        );
        let doomed_name = doomed.id().to_owned();
        let (_never, running) = shutdown::channel();
        let doomed_task = tokio::spawn(doomed.run(running.clone()));
        let id = app.upload_ok("mpl-grace-hopper.jpg").await;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let running = app.jobs("status=RUNNING").await;
            if running.pagination.total == 1 {
                assert_eq!(
                    app.job(running.jobs[0].id).await.locked_by.as_deref(),
                    Some(doomed_name.as_str())
                );
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the doomed runner never claimed the job"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // ... and is killed mid-job: no release, no more heartbeats.
        doomed_task.abort();
        let _ = doomed_task.await;
        // A healthy runner rescues the job once the lease expires and finishes the image.
        let healthy = app.app.runner.clone();
        let healthy_task = tokio::spawn(healthy.run(running));
        let image = app.wait_terminal(&id, Duration::from_secs(60)).await;
        assert_eq!(image.status, ImageStatus::Stored, "{:?}", image.error);
        let offload = app.jobs("type=OFFLOAD_ORIGINAL").await.jobs.remove(0);
        assert_eq!(
            (offload.status, offload.attempts),
            (JobStatus::Completed, 2),
            "rescued, then run again"
        );
        assert_eq!(app.jobs("").await.pagination.total, 3, "no duplicated jobs");
        healthy_task.abort();
        app.stop().await;
    }
}

both_backends! {
    async fn an_offloads_asset_jobs_are_claimed_before_newer_offloads(backend) {
        let Some(f) = fixture(backend, 5).await else { return };
        f.image("old").await;
        f.image("new").await;
        let newer_offload = f.enqueue(JobKind::OffloadOriginal, "new").await;
        f.clock.advance_ms(10);
        let payload = OffloadPayload { image_id: "old".into(), temp_path: "tmp/old.upload".into(), checksum: "00".repeat(32) };
        let thumbnails = NewJob::for_image(JobKind::ThumbnailGeneration, &ImageId::from("old"), &payload)
            .expect("payload")
            .with_priority(ASSET_JOB_PRIORITY);
        let mut writer = f.db().write_connection(db::Durability::Acknowledged).await.expect("writer");
        let asset_job = db::jobs::insert(&mut *writer, f.db().backend, &thumbnails, 5, f.clock.now())
            .await
            .expect("insert")
            .expect("inserted");
        let order: Vec<JobId> = f.claim("runner", 10).await.iter().map(|j| j.id).collect();
        assert_eq!(order, vec![asset_job, newer_offload], "the started image's job first, though enqueued later");
    }
}

both_backends! {
    // Two runners claim one job at a time, interleaved (on PostgreSQL at
    // once, on separate connections, as two workers woken by one notice):
    // each image's thumbnail and preview jobs go to one of them, so that
    // one process decodes the original for both.
    async fn two_runners_competing_each_claim_an_images_asset_jobs_together(backend) {
        let Some(f) = fixture(backend, 5).await else { return };
        let mut all = Vec::new();
        for i in 0..40 {
            let image = format!("img{i}");
            f.image(&image).await;
            for kind in ASSET_JOB_KINDS {
                all.push((f.enqueue_at_priority(kind, &image, ASSET_JOB_PRIORITY).await, image.clone()));
            }
        }
        let claim_all = |name: &'static str| {
            let db = f.db().clone();
            let at = LeaseTime::At(f.clock.now());
            async move {
                let mut mine = Vec::new();
                loop {
                    let claim = Claim { runner: name, limit: 1, lease: LEASE, at, together: &ASSET_JOB_KINDS };
                    let batch = db::leases::claim(&db.pool, db.backend, claim).await.expect("claim");
                    if batch.is_empty() {
                        return mine;
                    }
                    mine.extend(batch.into_iter().map(|j| (j.id, j.image_id.expect("an image").to_string(), name)));
                    tokio::task::yield_now().await;
                }
            }
        };
        let (a, b) = tokio::join!(tokio::spawn(claim_all("a")), tokio::spawn(claim_all("b")));
        let mut claimed: Vec<(JobId, String, &str)> = a.expect("a").into_iter().chain(b.expect("b")).collect();
        claimed.sort_unstable();
        assert_eq!(
            claimed.iter().map(|(id, image, _)| (*id, image.clone())).collect::<Vec<_>>(),
            all,
            "every job claimed exactly once"
        );
        let split: Vec<&String> = claimed
            .chunks(2)
            .filter(|pair| pair[0].1 != pair[1].1 || pair[0].2 != pair[1].2)
            .map(|pair| &pair[0].1)
            .collect();
        let by_a = claimed.iter().filter(|(_, _, runner)| *runner == "a").count();
        assert!(split.is_empty(), "images whose asset jobs two runners took: {split:?} (a took {by_a} of 80)");
    }
}

both_backends! {
    async fn a_sibling_not_yet_due_is_not_claimed_with_its_image_s_other_asset_job(backend) {
        let Some(f) = fixture(backend, 5).await else { return };
        f.image("img").await;
        let thumbnails = f.enqueue_at_priority(JobKind::ThumbnailGeneration, "img", ASSET_JOB_PRIORITY).await;
        let preview = f.enqueue_at_priority(JobKind::PreviewGeneration, "img", ASSET_JOB_PRIORITY).await;
        // The preview failed once and waits for its backoff.
        sqlx::query("UPDATE job SET run_at = $1 WHERE id = $2")
            .bind(T0.plus_ms(60_000).get())
            .bind(preview.get())
            .execute(&f.db().pool)
            .await
            .expect("back off");

        let first: Vec<JobId> = f.claim_assets_together("runner", 10).await.iter().map(|j| j.id).collect();
        assert_eq!(first, vec![thumbnails], "the preview is not due yet");
        f.clock.advance_ms(60_000);
        let later: Vec<JobId> = f.claim_assets_together("runner", 10).await.iter().map(|j| j.id).collect();
        assert_eq!(later, vec![preview], "due now");
    }
}

both_backends! {
    // Siblings come with a picked asset job, beyond the limit: they never
    // take the place of a job of higher priority, and a picked job of
    // another kind brings none along.
    async fn a_higher_priority_job_is_claimed_before_siblings_and_brings_none_along(backend) {
        let Some(f) = fixture(backend, 5).await else { return };
        f.image("a").await;
        f.image("b").await;
        let a_thumbnails = f.enqueue_at_priority(JobKind::ThumbnailGeneration, "a", ASSET_JOB_PRIORITY).await;
        f.clock.advance_ms(10);
        let urgent = f.enqueue_at_priority(JobKind::WebhookDelivery, "b", ASSET_JOB_PRIORITY + 1).await;
        let b_thumbnails = f.enqueue_at_priority(JobKind::ThumbnailGeneration, "b", ASSET_JOB_PRIORITY).await;
        let a_preview = f.enqueue_at_priority(JobKind::PreviewGeneration, "a", ASSET_JOB_PRIORITY).await;
        let b_preview = f.enqueue_at_priority(JobKind::PreviewGeneration, "b", ASSET_JOB_PRIORITY).await;

        let ids = |jobs: Vec<Job>| jobs.iter().map(|j| j.id).collect::<Vec<_>>();
        assert_eq!(ids(f.claim_assets_together("runner", 1).await), vec![urgent], "alone: it is no asset job");
        assert_eq!(
            ids(f.claim_assets_together("runner", 1).await),
            vec![a_thumbnails, a_preview],
            "the oldest asset job and its sibling, beyond the limit"
        );
        assert_eq!(ids(f.claim_assets_together("runner", 1).await), vec![b_thumbnails, b_preview]);
    }
}

both_backends! {
    async fn the_completer_commits_effects_and_children_of_a_group_and_skips_a_lost_lease(backend) {
        let Some(f) = fixture(backend, 5).await else { return };
        // Job c's lease passes to another runner before its result arrives.
        f.image("c").await;
        f.enqueue(JobKind::OffloadOriginal, "c").await;
        let lost = f.claim("runner", 10).await.remove(0);
        f.clock.advance_ms(LEASE_MS + 1);
        f.rescue().await;
        let thief = f.claim("thief", 10).await;
        assert_eq!(thief.iter().map(|j| j.id).collect::<Vec<_>>(), vec![lost.id]);
        for id in ["a", "b"] {
            f.image(id).await;
            f.enqueue(JobKind::OffloadOriginal, id).await;
        }
        let claimed = f.claim("runner", 10).await;
        assert_eq!(claimed.len(), 2);

        let in_flight = Arc::new(InFlight::default());
        in_flight.claimed(claimed.iter().chain([&lost]).map(Job::lease), tokio::time::Instant::now() + Duration::from_secs(300));
        let (batch, task) = f.completer("runner", RetryPolicy::default()).start(in_flight.clone());
        for job in claimed.iter().chain([&lost]) {
            let image_id = job.image_id.clone().expect("an image");
            let payload = OffloadPayload { image_id: image_id.clone(), temp_path: format!("tmp/{image_id}.upload"), checksum: "00".repeat(32) };
            let outcome = Outcome {
                effects: vec![ImageEffect::Original {
                    image_id: image_id.clone(),
                    original_path: format!("originals/00/{image_id}"),
                }],
                children: vec![NewJob::for_image(JobKind::PreviewGeneration, &image_id, &payload).expect("payload")],
            };
            in_flight.finished(job.lease());
            batch.send(Finished { job: job.clone(), result: Ok(outcome), elapsed: std::time::Duration::ZERO }).await.expect("running completer");
        }
        drop(batch);
        task.await.expect("completer task");
        assert!(in_flight.held().is_empty(), "every submitted job has ended: {:?}", in_flight.held());

        for job in &claimed {
            assert_eq!(f.job(job.id).await.status, JobStatus::Completed);
            let image = db::images::get(&f.db().pool, job.image_id.as_ref().expect("image")).await.expect("get").expect("row");
            assert!(image.original_path.is_some(), "the effect is written with the completion");
        }
        assert_eq!(f.job(lost.id).await.locked_by.as_deref(), Some("thief"), "a lost lease writes nothing");
        let lost_image = db::images::get(&f.db().pool, &ImageId::from("c")).await.expect("get").expect("row");
        assert!(lost_image.original_path.is_none(), "nor its effect");
        let filter = db::jobs::JobFilter { kind: Some(JobKind::PreviewGeneration), ..Default::default() };
        let window = db::Window { after: None, limit: 100, offset: 0 };
        let children = db::jobs::list(&f.db().pool, &filter, &window).await.expect("list").rows;
        let mut parents: Vec<String> = children.iter().filter_map(|j| j.image_id.as_ref().map(ToString::to_string)).collect();
        parents.sort();
        assert_eq!(parents, vec!["a".to_owned(), "b".to_owned()], "children of the completed jobs only");
    }
}

both_backends! {
    async fn a_runner_that_re_claims_its_own_rescued_job_cannot_end_it_from_the_earlier_execution(backend) {
        let Some(f) = fixture(backend, 5).await else { return };
        let (id, earlier, later) = f.re_claimed("runner").await;
        assert_eq!((later.id, later.locked_by.as_deref()), (id, Some("runner")), "the same runner holds it again");
        assert_ne!(later.lease_id, earlier.lease_id, "under a new lease");

        // Every ending of the earlier execution is refused: bare, with effects, failed.
        let original = ImageEffect::Original { image_id: ImageId::from("img"), original_path: "originals/00/img".into() };
        let with_effects = Outcome { effects: vec![original], children: vec![] };
        let policy = RetryPolicy::default();
        let endings = [
            f.end("runner", policy, &earlier, Ok(Outcome::default())).await,
            f.end("runner", policy, &earlier, Ok(with_effects)).await,
            f.end("runner", policy, &earlier, Err(HandlerError::retryable("late"))).await,
            f.end("runner", policy, &earlier, Err(HandlerError::permanent("late"))).await,
        ];
        let renewed = db::leases::extend_leases(&f.db().pool, f.db().backend, "runner", &[earlier.lease()], LEASE, f.clock.lease_time())
            .await
            .expect("extend");

        assert_eq!(endings, [Ending::LeaseLost; 4]);
        assert_eq!(renewed, 0, "nor is its lease renewed");
        assert_eq!(f.job(id).await, later, "the later execution's job is exactly as claimed");
        let image = db::images::get(&f.db().pool, &ImageId::from("img")).await.expect("get").expect("image");
        assert!(image.original_path.is_none(), "no effect of the earlier execution");
        let ending = f.end("runner", policy, &later, Ok(Outcome::default())).await;
        assert_eq!(ending, Ending::Completed { children: 0 }, "the later execution ends it");
    }
}

both_backends! {
    // The completer completes a group's successes in one statement: the
    // earlier execution of a job held again in the same group must still
    // write nothing, its effects included.
    async fn in_one_group_only_the_later_execution_of_a_re_claimed_job_writes_its_effects(backend) {
        let Some(f) = fixture(backend, 5).await else { return };
        let (id, earlier, later) = f.re_claimed("runner").await;
        let original = |path: &str| Outcome {
            effects: vec![ImageEffect::Original { image_id: ImageId::from("img"), original_path: path.into() }],
            children: vec![],
        };
        let group = [
            Finished { job: later.clone(), result: Ok(original("originals/00/later")), elapsed: Duration::ZERO },
            Finished { job: earlier, result: Ok(original("originals/00/earlier")), elapsed: Duration::ZERO },
        ];

        let endings = f.completer("runner", RetryPolicy::default()).write(&group).await.expect("write");

        assert_eq!(endings, [Ending::Completed { children: 0 }, Ending::LeaseLost]);
        assert_eq!(f.job(id).await.status, JobStatus::Completed);
        let image = db::images::get(&f.db().pool, &ImageId::from("img")).await.expect("get").expect("image");
        assert_eq!(image.original_path.as_deref(), Some("originals/00/later"), "the earlier execution wrote nothing");
    }
}

/// The system clock, running ahead: a host whose clock is wrong.
#[derive(Debug)]
struct Ahead(i64);

impl Clock for Ahead {
    fn now(&self) -> Millis {
        pictor::clock::SystemClock.now().plus_ms(self.0)
    }
}

both_backends! {
    async fn a_host_whose_clock_runs_ahead_neither_rescues_live_jobs_nor_lengthens_its_leases(backend) {
        let Some(app) = spawn_app_on(backend, |_| {}, Overrides::default(), false).await else { return };
        let honest = app.app.queue.clone();
        let ahead = pictor::queue::Queue { clock: Arc::new(Ahead(31_000)), ..honest.clone() };
        let (db, backend) = (&honest.db, honest.db.backend);
        let job = |i: i64| NewJob { kind: JobKind::PreviewGeneration, payload: format!("{{\"i\":{i}}}"), image_id: None, priority: 0, dedupe_key: None };
        let live_id = honest.enqueue(&job(1)).await.expect("enqueue").expect("inserted");
        let claim = |runner, at| Claim { runner, limit: 1, lease: LEASE, at, together: &[] };
        let live = db::leases::claim(&db.pool, backend, claim("honest", honest.clock.lease_time())).await.expect("claim");
        assert_eq!(live[0].id, live_id);

        // The host 31 s ahead looks for expired leases while the live one has 30 s left.
        let rescued = rescuer::rescue_once(&ahead, &*app.app.effects).await.expect("rescue");

        assert!(rescued.is_empty(), "a live job was rescued: {rescued:?}");
        assert_eq!(db::jobs::get(&db.pool, live_id).await.expect("get").expect("job").status, JobStatus::Running);

        // Its own claims and renewals last 30 s on the database's clock, not 61 s.
        honest.enqueue(&job(2)).await.expect("enqueue").expect("inserted");
        let before = pictor::clock::SystemClock.now();
        let mine = db::leases::claim(&db.pool, backend, claim("ahead", ahead.clock.lease_time())).await.expect("claim").remove(0);
        let lease_left = |job: &Job| job.locked_until.expect("leased").get() - before.get();
        assert!((29_000..40_000).contains(&lease_left(&mine)), "lease of {} ms", lease_left(&mine));
        let in_flight = Arc::new(InFlight::default());
        in_flight.claimed([mine.lease()], tokio::time::Instant::now() + Duration::from_secs(300));
        let heartbeat = pictor::queue::heartbeat::Heartbeat { queue: ahead.clone(), runner: "ahead".into(), in_flight, lease: LEASE };
        assert_eq!(heartbeat.beat().await.expect("beat"), 1);
        let renewed = db::jobs::get(&db.pool, mine.id).await.expect("get").expect("job");
        assert!((29_000..40_000).contains(&lease_left(&renewed)), "renewed for {} ms", lease_left(&renewed));
        app.stop().await;
    }
}
