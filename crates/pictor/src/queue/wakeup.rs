//! Wakes an idle runner when a job is enqueued, so the poll interval is only
//! the fallback. In-process signal; PostgreSQL's LISTEN/NOTIFY feeds the same.

use std::sync::Arc;

use tokio::sync::Notify;

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
