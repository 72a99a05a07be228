//! The jobs a runner holds a lease on, from their claim until their ending
//! is written: the one record of what is in flight, by lease (a job the
//! runner re-claimed while an earlier execution of it still runs is two
//! entries). The heartbeat renews
//! these leases, except for a job still running past its deadline; the
//! claimer fills the slots of the jobs no longer running.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;
use tokio::time::Instant;

use super::Lease;

/// Where a held job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Its handler runs: it takes one of the runner's slots.
    Running,
    /// Its handler finished; the completer has not written its ending yet.
    Ending,
}

/// A held job.
#[derive(Debug, Clone, Copy)]
struct Held {
    stage: Stage,
    /// When its attempt runs out of time.
    deadline: Instant,
}

/// The held jobs, and a count of the running ones that wakes whoever waits
/// for a slot (or for the last one to finish).
#[derive(Debug)]
pub struct InFlight {
    jobs: Mutex<HashMap<Lease, Held>>,
    running: watch::Sender<usize>,
}

impl Default for InFlight {
    fn default() -> Self {
        Self { jobs: Mutex::default(), running: watch::Sender::new(0) }
    }
}

impl InFlight {
    fn lock(&self) -> MutexGuard<'_, HashMap<Lease, Held>> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish(&self, jobs: &HashMap<Lease, Held>) {
        let running = jobs.values().filter(|held| held.stage == Stage::Running).count();
        self.running.send_if_modified(|count| std::mem::replace(count, running) != running);
    }

    /// Records freshly claimed jobs as running until `deadline`.
    pub fn claimed(&self, leases: impl IntoIterator<Item = Lease>, deadline: Instant) {
        let mut jobs = self.lock();
        jobs.extend(leases.into_iter().map(|lease| (lease, Held { stage: Stage::Running, deadline })));
        self.publish(&jobs);
    }

    /// A job's handler finished: its slot is free, its lease still held.
    pub fn finished(&self, lease: Lease) {
        let mut jobs = self.lock();
        if let Some(held) = jobs.get_mut(&lease) {
            held.stage = Stage::Ending;
        }
        self.publish(&jobs);
    }

    /// The jobs' endings are written (or given up on): they are no longer held.
    pub fn ended(&self, leases: impl IntoIterator<Item = Lease>) {
        let mut jobs = self.lock();
        for lease in leases {
            jobs.remove(&lease);
        }
        self.publish(&jobs);
    }

    /// Every held lease.
    pub fn held(&self) -> Vec<Lease> {
        self.lock().keys().copied().collect()
    }

    /// The held jobs whose leases the heartbeat renews at `now`: all but
    /// those still running past their deadline. Their executor fails them
    /// at the deadline; should it not, their leases lapse and the rescuer
    /// ends their attempt.
    pub fn renewable(&self, now: Instant) -> Vec<Lease> {
        self.lock()
            .iter()
            .filter(|(_, held)| held.stage == Stage::Ending || held.deadline > now)
            .map(|(id, _)| *id)
            .collect()
    }

    /// How many handlers run now.
    pub fn running(&self) -> usize {
        *self.running.borrow()
    }

    /// A receiver of the running count, which changes as slots fill and free.
    pub fn watch_running(&self) -> watch::Receiver<usize> {
        self.running.subscribe()
    }

    /// Waits until no handler runs.
    pub async fn none_running(&self) {
        let mut running = self.running.subscribe();
        let _ = running.wait_for(|count| *count == 0).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::jobs::{JobId, LeaseId};

    fn lease(job: i64) -> Lease {
        Lease { job: JobId(job), id: Some(LeaseId(job * 10)) }
    }

    #[test]
    fn a_finished_job_frees_its_slot_but_stays_held_until_it_ended() {
        let in_flight = InFlight::default();
        in_flight.claimed([lease(1), lease(2)], Instant::now());
        assert_eq!(in_flight.running(), 2);
        in_flight.finished(lease(1));
        assert_eq!(in_flight.running(), 1);
        let mut held = in_flight.held();
        held.sort_by_key(|l| l.job);
        assert_eq!(held, vec![lease(1), lease(2)], "its lease is still renewed");
        in_flight.ended([lease(1)]);
        assert_eq!(in_flight.held(), vec![lease(2)]);
    }

    #[test]
    fn a_job_running_past_its_deadline_is_no_longer_renewed_but_an_ending_one_is() {
        let in_flight = InFlight::default();
        let claimed_at = Instant::now();
        let deadline = claimed_at + std::time::Duration::from_secs(300);
        in_flight.claimed([lease(1), lease(2)], deadline);
        in_flight.finished(lease(2));
        let mut renewed = in_flight.renewable(claimed_at);
        renewed.sort_by_key(|l| l.job);
        assert_eq!(renewed, vec![lease(1), lease(2)], "both within the deadline");

        let renewed = in_flight.renewable(deadline);

        assert_eq!(renewed, vec![lease(2)], "the hung one lapses; the one being written is kept");
        assert_eq!(in_flight.running(), 1, "its slot stays taken until its executor gives up on it");
    }

    #[test]
    fn a_job_re_claimed_while_an_earlier_execution_runs_is_held_twice() {
        let in_flight = InFlight::default();
        let (earlier, later) = (lease(1), Lease { job: JobId(1), id: Some(LeaseId(99)) });
        in_flight.claimed([earlier, later], Instant::now());

        in_flight.finished(earlier);
        in_flight.ended([earlier]);

        assert_eq!(in_flight.held(), vec![later], "the later execution keeps its lease and its slot");
        assert_eq!(in_flight.running(), 1);
    }
}
