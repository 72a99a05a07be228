//! Jobs that never return: the job's deadline fails their attempt, the CPU
//! pool replaces a thread they hold, and a stopping runner keeps their
//! attempts counted, so that a poison job ends FAILED after its attempts
//! while other images keep being stored.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use pictor::app::Overrides;
use pictor::db;
use pictor::handlers::{CpuPool, HandlerContext, ImageEffect, OffloadOriginal, Outcome};
use pictor::images::ImageId;
use pictor::queue::handler::{HandlerError, JobHandler, Registry};
use pictor::queue::retry::RetryPolicy;
use pictor::queue::runner::{Runner, RunnerSettings};
use pictor::queue::{Job, JobId, NewJob, rescuer};
use pictor::shutdown;
use pictor_client::models::{ImageStatus, JobKind, JobStatus};
use tokio::sync::Notify;

use crate::helpers::{clocked_app, spawn_app_on};

/// The first OFFLOAD_ORIGINAL it sees hangs a CPU-pool thread on every
/// attempt, until `released`; every other runs as usual.
struct PoisonOffload {
    ctx: Arc<HandlerContext>,
    real: OffloadOriginal,
    poison: Arc<OnceLock<JobId>>,
    /// Told each time the poison job's work starts hanging.
    hanging: Arc<Notify>,
    /// Lets the hung threads return at the end of the test.
    released: Arc<AtomicBool>,
}

#[async_trait::async_trait]
impl JobHandler<ImageEffect> for PoisonOffload {
    async fn handle(&self, job: &Job) -> Result<Outcome, HandlerError> {
        if *self.poison.get_or_init(|| job.id) != job.id {
            return self.real.handle(job).await;
        }
        let (hanging, released) = (self.hanging.clone(), self.released.clone());
        self.ctx
            .run_cpu(move || {
                hanging.notify_one();
                while !released.load(Ordering::SeqCst) {
                    std::thread::park_timeout(Duration::from_millis(10));
                }
                Err(HandlerError::permanent("released by the test"))
            })
            .await
    }
}

both_backends! {
    async fn a_job_whose_image_work_never_returns_ends_failed_on_its_deadline_while_other_images_are_stored(backend) {
        // Image work runs on a pool of one thread, so that the poison job's
        // hang holds all of it.
        let (hanging, released) = (Arc::new(Notify::new()), Arc::new(AtomicBool::new(false)));
        let wedged = Arc::new(Mutex::new(Vec::new()));
        let registry: pictor::app::RegistryFactory = Box::new({
            let (hanging, released, wedged) = (hanging.clone(), released.clone(), wedged.clone());
            move |ctx| {
                let on_wedged = move |stuck| wedged.lock().expect("lock").push(stuck);
                let cpu = Arc::new(CpuPool::new(1, on_wedged).expect("pool"));
                let ctx = Arc::new(HandlerContext { cpu, ..(**ctx).clone() });
                let mut registry = pictor::handlers::registry(&ctx);
                let poison = PoisonOffload {
                    real: OffloadOriginal::new(ctx.clone()),
                    ctx,
                    poison: Arc::default(),
                    hanging,
                    released,
                };
                registry.register(JobKind::OffloadOriginal, poison);
                registry
            }
        });
        // The poison job's second attempt waits 3 s: the healthy image's work
        // runs meanwhile, on the thread that replaced the hung one.
        let retries = RetryPolicy { base_delay_ms: 3_000, max_delay_ms: 3_000, jitter: 0.0 };
        let overrides = Overrides { registry: Some(registry), retry: Some(retries), ..Default::default() };
        let configure = |c: &mut pictor::config::Config| {
            c.job_timeout_secs = 1;
            c.max_attempts = 2;
        };
        let Some(app) = spawn_app_on(backend, configure, overrides, true).await else { return };
        let poisoned = app.upload_ok("plasma-coldripple.jpg").await;
        hanging.notified().await;
        let give_up = std::time::Instant::now() + Duration::from_secs(30);
        let timed_out = loop {
            let offload = app.jobs(&format!("imageId={poisoned}")).await.jobs.remove(0);
            if offload.last_error.is_some() {
                break offload;
            }
            assert!(std::time::Instant::now() < give_up, "the first attempt never ended: {offload:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!((timed_out.status, timed_out.attempts), (JobStatus::Pending, 1), "{timed_out:?}");

        // The pool's only thread still runs the poison job's work.
        let healthy = app.upload_ok("mpl-grace-hopper.jpg").await;
        let stored = app.wait_terminal(&healthy, Duration::from_secs(30)).await;

        assert_eq!(stored.status, ImageStatus::Stored, "{:?}", stored.error);
        let failed = app.wait_terminal(&poisoned, Duration::from_secs(30)).await;
        assert_eq!(failed.status, ImageStatus::Failed);
        let offload = app.jobs(&format!("imageId={poisoned}")).await.jobs.remove(0);
        let detail = app.job(offload.id).await;
        assert_eq!((detail.status, detail.attempts), (JobStatus::Failed, 2));
        assert_eq!(detail.retry_info.last_error.as_deref(), Some("timed out after 1 s"));
        assert!(
            failed.error.as_deref().is_some_and(|e| e.contains("timed out after 1 s")),
            "the image says why: {:?}",
            failed.error
        );
        assert_eq!(
            wedged.lock().expect("lock").first(),
            Some(&2),
            "two threads stuck in a pool of one: the service would exit for its supervisor"
        );
        released.store(true, Ordering::SeqCst);
        app.stop().await;
    }
}

/// A handler that never returns, telling `started` each time it begins.
struct Hang {
    started: Arc<Notify>,
}

#[async_trait::async_trait]
impl JobHandler<ImageEffect> for Hang {
    async fn handle(&self, _job: &Job) -> Result<Outcome, HandlerError> {
        self.started.notify_one();
        std::future::pending().await
    }
}

both_backends! {
    async fn a_hung_job_released_at_every_shutdown_still_ends_failed_after_its_attempts(backend) {
        let Some(f) = clocked_app(backend, |c| c.max_attempts = 3).await else { return };
        let queue = &f.app.queue;
        f.insert_image("img").await;
        let job = NewJob { kind: JobKind::OffloadOriginal, payload: "{}".into(), image_id: Some("img".into()), priority: 0, dedupe_key: None };
        let id = queue.enqueue(&job).await.expect("enqueue").expect("inserted");
        let started = Arc::new(Notify::new());
        let settings = RunnerSettings {
            shutdown_timeout: Duration::from_millis(50),
            poll_interval: Duration::from_millis(20),
            ..RunnerSettings::default()
        };

        // Each restart: a runner claims the job, hangs in it, and is stopped.
        for attempt in 1..=3 {
            let mut registry = Registry::default();
            registry.register(JobKind::OffloadOriginal, Hang { started: started.clone() });
            let runner = Runner::new(queue.clone(), f.app.effects.clone(), registry, settings.clone());
            let (stop, stopping) = shutdown::channel();
            let task = tokio::spawn(runner.run(stopping));
            started.notified().await;
            stop.trigger();
            task.await.expect("runner task").expect("the runner stops and releases its job");
            let released = db::jobs::get(&f.app.db.pool, id).await.expect("get").expect("job");
            assert_eq!(released.attempts, attempt, "the interrupted attempt counts");
        }

        let job = db::jobs::get(&f.app.db.pool, id).await.expect("get").expect("job");
        assert_eq!((job.status, job.attempts), (JobStatus::Failed, 3));
        assert_eq!(job.last_error.as_deref(), Some(rescuer::RELEASED));
        let image = db::images::get(&f.app.db.pool, &ImageId::from("img")).await.expect("get").expect("image");
        assert_eq!(image.status, ImageStatus::Failed, "the image is told");
    }
}
