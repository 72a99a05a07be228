//! Renews the leases of the jobs a runner holds, every third of the lease,
//! so that a job taking longer than one lease is not rescued from under it;
//! never a job running past its deadline (see [`InFlight::renewable`]).

use std::sync::Arc;
use std::time::Duration;

use super::in_flight::InFlight;
use super::{Queue, QueueError};
use crate::db::{self, Durability};
use crate::shutdown::Shutdown;

/// The heartbeat of one runner.
pub struct Heartbeat {
    /// The queue.
    pub queue: Queue,
    /// The runner whose leases it renews.
    pub runner: Arc<str>,
    /// What the runner holds.
    pub in_flight: Arc<InFlight>,
    /// Length of a lease.
    pub lease: Duration,
}

impl Heartbeat {
    /// Renews every third of a lease until `shutdown`.
    pub async fn run(self, shutdown: Shutdown) {
        let mut tick = tokio::time::interval((self.lease / 3).max(Duration::from_millis(50)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stop = shutdown.wait();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.beat().await {
                tracing::warn!(target: "job_runner", error = %e, "heartbeat failed");
            }
        }
    }

    /// Renews the held leases once; returns how many were renewed.
    ///
    /// # Errors
    /// The database failed.
    pub async fn beat(&self) -> Result<u64, QueueError> {
        let leases = self.in_flight.renewable(tokio::time::Instant::now());
        if leases.is_empty() {
            return Ok(0);
        }
        let (db, at) = (&self.queue.db, self.queue.clock.lease_time());
        let mut conn = db.write_connection(Durability::Bookkeeping).await?;
        Ok(db::leases::extend_leases(&mut *conn, db.backend, &self.runner, &leases, self.lease, at).await?)
    }
}
