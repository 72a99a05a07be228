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
    jobs: Mutex<Jobs>,
    running: watch::Sender<usize>,
}

/// The held jobs by lease, with how many of them run, kept as they change
/// (counting them at every change cost a scan of up to a claim's worth of
/// entries per finished job).
#[derive(Debug, Default)]
struct Jobs {
    by_lease: HashMap<Lease, Held>,
    running: usize,
}

impl Jobs {
    fn insert(&mut self, lease: Lease, held: Held) {
        if held.stage == Stage::Running {
            self.running += 1;
        }
        if let Some(earlier) = self.by_lease.insert(lease, held) {
            self.forget(earlier);
        }
    }

    fn remove(&mut self, lease: &Lease) {
        if let Some(held) = self.by_lease.remove(lease) {
            self.forget(held);
        }
    }

    fn forget(&mut self, held: Held) {
        if held.stage == Stage::Running {
            self.running -= 1;
        }
    }
}

impl Default for InFlight {
    fn default() -> Self {
        Self { jobs: Mutex::default(), running: watch::Sender::new(0) }
    }
}

impl InFlight {
    fn lock(&self) -> MutexGuard<'_, Jobs> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish(&self, jobs: &Jobs) {
        let running = jobs.running;
        self.running.send_if_modified(|count| std::mem::replace(count, running) != running);
    }

    /// Records freshly claimed jobs as running until `deadline`.
    pub fn claimed(&self, leases: impl IntoIterator<Item = Lease>, deadline: Instant) {
        let mut jobs = self.lock();
        for lease in leases {
            jobs.insert(lease, Held { stage: Stage::Running, deadline });
        }
        self.publish(&jobs);
    }

    /// A job's handler finished: its slot is free, its lease still held.
    pub fn finished(&self, lease: Lease) {
        let mut jobs = self.lock();
        if let Some(held) = jobs.by_lease.get_mut(&lease)
            && held.stage == Stage::Running
        {
            held.stage = Stage::Ending;
            jobs.running -= 1;
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
        self.lock().by_lease.keys().copied().collect()
    }

    /// The held jobs whose leases the heartbeat renews at `now`: all but
    /// those still running past their deadline. Their executor fails them
    /// at the deadline; should it not, their leases lapse and the rescuer
    /// ends their attempt.
    pub fn renewable(&self, now: Instant) -> Vec<Lease> {
        self.lock()
            .by_lease
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

    #[test]
    fn the_running_count_follows_repeats_unknown_leases_and_endings_before_finishing() {
        let in_flight = InFlight::default();
        in_flight.claimed([lease(1), lease(2), lease(3)], Instant::now());
        in_flight.claimed([lease(3)], Instant::now());
        assert_eq!(in_flight.running(), 3, "the same lease claimed again is one job");
        in_flight.finished(lease(1));
        in_flight.finished(lease(1));
        in_flight.finished(lease(9));
        assert_eq!(in_flight.running(), 2, "a repeated or unknown finish frees nothing more");
        in_flight.ended([lease(2), lease(9)]);
        assert_eq!(in_flight.running(), 1, "a running job given up on frees its slot");
        in_flight.ended([lease(1), lease(3)]);
        assert_eq!(in_flight.running(), 0);
        assert!(in_flight.held().is_empty());
    }
}
