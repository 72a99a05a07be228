//! Wakes an idle runner when a job is enqueued, so the poll interval is only
//! the fallback. In-process signal; PostgreSQL's LISTEN/NOTIFY feeds the same.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::db;
use crate::shutdown::Shutdown;

/// A shared wake-up signal; a notify with nobody waiting is kept for the next wait.
#[derive(Debug, Clone, Default)]
pub struct Wakeup(Arc<Notify>);

impl Wakeup {
    /// Tells a waiting runner that jobs are due.
    pub fn notify(&self) {
        self.0.notify_one();
    }

    /// Waits for the next notify (or takes a stored one).
    pub async fn wait(&self) {
        self.0.notified().await;
    }
}

/// Turns PostgreSQL notices on [`db::jobs::NOTIFY_CHANNEL`] into wake-ups of this
/// process's runner, so jobs enqueued by any process start at once, until
/// `shutdown`. Reconnects with backoff when the connection drops.
pub async fn listen_postgres(url: String, wakeup: Wakeup, shutdown: Shutdown) {
    tokio::select! {
        () = shutdown.wait() => {}
        () = listen_forever(url, wakeup) => {}
    }
}

async fn listen_forever(url: String, wakeup: Wakeup) {
    let mut backoff = std::time::Duration::from_millis(250);
    loop {
        match sqlx::postgres::PgListener::connect(&url).await {
            Ok(mut listener) => match listener.listen(db::jobs::NOTIFY_CHANNEL).await {
                Ok(()) => {
                    tracing::info!(target: "job_runner", channel = db::jobs::NOTIFY_CHANNEL, "listening for new jobs");
                    backoff = std::time::Duration::from_millis(250);
                    // Jobs may have arrived while no one was listening.
                    wakeup.notify();
                    loop {
                        match listener.recv().await {
                            Ok(_) => {
                                // Counted by `bench/e2e.py --count-statements`.
                                tracing::debug!("woken by a job notice");
                                wakeup.notify();
                            }
                            Err(e) => {
                                tracing::warn!(target: "job_runner", error = %e, "job notifications lost; reconnecting");
                                break;
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(target: "job_runner", error = %e, "cannot LISTEN for jobs"),
            },
            Err(e) => {
                tracing::warn!(target: "job_runner", error = %e, retry_in = ?backoff, "cannot connect the job listener")
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(std::time::Duration::from_secs(30));
    }
}
