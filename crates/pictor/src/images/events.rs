//! Change events of images and jobs, for `GET /api/events` and the pages.
//! The images layer publishes its own changes as it makes them (an upload,
//! an edit, a delete). One poller per process reads the rows changed lately,
//! so that changes made elsewhere (the runner, `pictor worker`s) show too:
//! one query per table per tick, only while someone listens.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pictor_client::models::{Image, JobSummary};
use tokio::sync::{Notify, broadcast, watch};

use super::{catalog, view};
use crate::clock::{Millis, SharedClock};
use crate::db::{self, Db, DbResult, ImageId};
use crate::queue::JobId;

/// How often the poller looks for changed rows while a client listens.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How far back each poll looks: covers transactions that commit a while
/// after the `updated_at` they wrote, and clocks of other processes.
const LOOKBACK: Duration = Duration::from_secs(10);
/// Changes a slow client may fall behind by before it is told it lagged.
const CHANNEL_CAPACITY: usize = 1_024;

/// One change, as sent to every listener.
#[derive(Debug, Clone)]
pub enum Change {
    /// An image's state or details changed (`event: image`).
    Image(Arc<Image>),
    /// An image was deleted (`event: image-deleted`).
    ImageDeleted(String),
    /// A job's state or attempts changed (`event: job`).
    Job(Arc<JobSummary>),
}

/// The hub: a broadcast channel, the poller's switch, and the stop signal
/// that ends open streams at shutdown.
#[derive(Debug, Clone)]
pub struct Events {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    tx: broadcast::Sender<Change>,
    /// Asks the poller to look now rather than at its next tick.
    nudge: Notify,
    /// True while a poller task runs.
    polling: AtomicBool,
    /// Becomes true at shutdown.
    closed: watch::Sender<bool>,
    interval: Duration,
    db: Db,
    clock: SharedClock,
}

/// A listener: the changes, and whether the hub has closed.
#[derive(Debug)]
pub struct Subscription {
    /// Every change from the moment of subscribing.
    pub changes: broadcast::Receiver<Change>,
    /// True once the hub closed (shutdown): the stream should end.
    pub closed: watch::Receiver<bool>,
}

impl Events {
    /// A hub over `db`, polling every [`POLL_INTERVAL`] while someone listens.
    pub fn new(db: Db, clock: SharedClock) -> Self {
        let (tx, _) = broadcast::channel(CHANNEL_CAPACITY);
        let (closed, _) = watch::channel(false);
        Self {
            inner: Arc::new(Inner {
                tx,
                nudge: Notify::new(),
                polling: AtomicBool::new(false),
                closed,
                interval: POLL_INTERVAL,
                db,
                clock,
            }),
        }
    }

    /// Sends a change to every listener (none listening is fine), and has
    /// the poller look for what came with it.
    pub fn publish(&self, change: Change) {
        let _ = self.inner.tx.send(change);
        self.nudge();
    }

    /// Makes the poller look now: something changed in this process.
    pub fn nudge(&self) {
        self.inner.nudge.notify_one();
    }

    /// Ends every open stream; called at shutdown.
    pub fn close(&self) {
        let _ = self.inner.closed.send(true);
    }

    /// Listens, starting the poller when it is not running.
    pub fn subscribe(&self) -> Subscription {
        let changes = self.inner.tx.subscribe();
        if !self.inner.polling.swap(true, Ordering::SeqCst) {
            tokio::spawn(poll_loop(self.inner.clone()));
        }
        Subscription { changes, closed: self.inner.closed.subscribe() }
    }
}

/// What was last sent per row, to send only real changes.
#[derive(Debug, Default)]
struct Seen {
    /// Image id → (updated_at, status).
    images: HashMap<ImageId, (Millis, String)>,
    /// Job id → (updated_at, status, attempts); a heartbeat moves only updated_at.
    jobs: HashMap<JobId, (Millis, String, i64)>,
}

async fn poll_loop(inner: Arc<Inner>) {
    let mut seen = Seen::default();
    let mut closed = inner.closed.subscribe();
    loop {
        if inner.tx.receiver_count() == 0 {
            inner.polling.store(false, Ordering::SeqCst);
            // A client may have subscribed between the count and the store:
            // then whoever sets the flag first keeps polling.
            if inner.tx.receiver_count() == 0 || inner.polling.swap(true, Ordering::SeqCst) {
                return;
            }
        }
        if let Err(e) = poll_once(&inner, &mut seen).await {
            tracing::warn!(error = %e, "events: polling for changes failed");
        }
        tokio::select! {
            () = tokio::time::sleep(inner.interval) => {}
            () = inner.nudge.notified() => {}
            _ = closed.wait_for(|c| *c) => return,
        }
    }
}

/// Publishes the images and jobs changed since the last look.
async fn poll_once(inner: &Inner, seen: &mut Seen) -> DbResult<()> {
    let since = inner.clock.now().plus_ms(-i64::try_from(LOOKBACK.as_millis()).unwrap_or(i64::MAX));
    let pool = &inner.db.pool;
    let mut changed = Vec::new();
    for record in db::images::changed_since(pool, since).await? {
        let mark = (record.updated_at, record.status.as_str().to_owned());
        if seen.images.get(&record.id) != Some(&mark) {
            seen.images.insert(record.id.clone(), mark);
            changed.push(record);
        }
    }
    seen.images.retain(|_, (updated, _)| *updated > since);
    for image in catalog::with_jobs(pool, &changed).await? {
        let _ = inner.tx.send(Change::Image(Arc::new(image)));
    }

    for job in db::jobs::changed_since(pool, since).await? {
        let mark = (job.updated_at, job.status.as_str().to_owned(), job.attempts);
        let before = seen.jobs.insert(job.id, mark);
        if before.is_none_or(|(_, status, attempts)| status != job.status.as_str() || attempts != job.attempts) {
            let _ = inner.tx.send(Change::Job(Arc::new(view::job_summary(&job))));
        }
    }
    seen.jobs.retain(|_, (updated, _, _)| *updated > since);
    Ok(())
}
