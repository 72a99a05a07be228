//! One way to stop: a [`ShutdownTrigger`] fires once and every [`Shutdown`]
//! cloned from it resolves (as in mini-redis's `server::run(listener,
//! shutdown)`). The service, the runner's parts and the event stream all
//! stop through it.

use std::time::Duration;

use tokio::sync::watch;

/// Tells everything holding a connected [`Shutdown`] to stop.
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

/// Resolves when a stop was asked for (or its trigger dropped); clone one per task.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// A connected trigger and signal.
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(tx), Shutdown(rx))
}

impl ShutdownTrigger {
    /// Asks everything to stop.
    pub fn trigger(&self) {
        let _ = self.0.send(true);
    }

    /// Another signal connected to this trigger.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown(self.0.subscribe())
    }
}

impl Shutdown {
    /// Waits for the stop.
    pub async fn wait(mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    /// Whether the stop was asked for already.
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Runs `work` at once and then every `period` until the stop, the
    /// loop of every periodic task (heartbeat, rescuer, pruner, sweeper,
    /// metrics upkeep). A round already started finishes; a late round is
    /// delayed, not run twice to catch up.
    pub async fn every<F, Fut>(self, period: Duration, mut work: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ()>,
    {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stop = self.wait();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                _ = tick.tick() => {}
            }
            work().await;
        }
    }
}
