//! The jobs a runner holds a lease on, from their claim until their ending
//! is written: the one record of what is in flight. The heartbeat renews
//! these leases, except for a job still running past its deadline; the
//! claimer fills the slots of the jobs no longer running.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;
use tokio::time::Instant;

use super::JobId;

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
    jobs: Mutex<HashMap<JobId, Held>>,
    running: watch::Sender<usize>,
}

impl Default for InFlight {
    fn default() -> Self {
        Self { jobs: Mutex::default(), running: watch::Sender::new(0) }
    }
}

impl InFlight {
    fn lock(&self) -> MutexGuard<'_, HashMap<JobId, Held>> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish(&self, jobs: &HashMap<JobId, Held>) {
        let running = jobs.values().filter(|held| held.stage == Stage::Running).count();
        self.running.send_if_modified(|count| std::mem::replace(count, running) != running);
    }

    /// Records freshly claimed jobs as running until `deadline`.
    pub fn claimed(&self, ids: impl IntoIterator<Item = JobId>, deadline: Instant) {
        let mut jobs = self.lock();
        jobs.extend(ids.into_iter().map(|id| (id, Held { stage: Stage::Running, deadline })));
        self.publish(&jobs);
    }

    /// A job's handler finished: its slot is free, its lease still held.
    pub fn finished(&self, id: JobId) {
        let mut jobs = self.lock();
        if let Some(held) = jobs.get_mut(&id) {
            held.stage = Stage::Ending;
        }
        self.publish(&jobs);
    }

    /// The jobs' endings are written (or given up on): they are no longer held.
    pub fn ended(&self, ids: impl IntoIterator<Item = JobId>) {
        let mut jobs = self.lock();
        for id in ids {
            jobs.remove(&id);
        }
        self.publish(&jobs);
    }

    /// Every held job.
    pub fn held(&self) -> Vec<JobId> {
        self.lock().keys().copied().collect()
    }

    /// The held jobs whose leases the heartbeat renews at `now`: all but
    /// those still running past their deadline. Their executor fails them
    /// at the deadline; should it not, their leases lapse and the rescuer
    /// ends their attempt.
    pub fn renewable(&self, now: Instant) -> Vec<JobId> {
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

    #[test]
    fn a_finished_job_frees_its_slot_but_stays_held_until_it_ended() {
        let in_flight = InFlight::default();
        in_flight.claimed([JobId(1), JobId(2)], Instant::now());
        assert_eq!(in_flight.running(), 2);
        in_flight.finished(JobId(1));
        assert_eq!(in_flight.running(), 1);
        let mut held = in_flight.held();
        held.sort();
        assert_eq!(held, vec![JobId(1), JobId(2)], "its lease is still renewed");
        in_flight.ended([JobId(1)]);
        assert_eq!(in_flight.held(), vec![JobId(2)]);
    }

    #[test]
    fn a_job_running_past_its_deadline_is_no_longer_renewed_but_an_ending_one_is() {
        let in_flight = InFlight::default();
        let claimed_at = Instant::now();
        let deadline = claimed_at + std::time::Duration::from_secs(300);
        in_flight.claimed([JobId(1), JobId(2)], deadline);
        in_flight.finished(JobId(2));
        let mut renewed = in_flight.renewable(claimed_at);
        renewed.sort();
        assert_eq!(renewed, vec![JobId(1), JobId(2)], "both within the deadline");

        let renewed = in_flight.renewable(deadline);

        assert_eq!(renewed, vec![JobId(2)], "the hung one lapses; the one being written is kept");
        assert_eq!(in_flight.running(), 1, "its slot stays taken until its executor gives up on it");
    }
}
