//! Time as Pictor records it: [`Millis`] since the Unix epoch, from the
//! system clock in production and from a hand-turned [`ManualClock`] in
//! tests of leases and backoff. Leases are judged on the database's clock
//! ([`LeaseTime`]), the one clock every host shares.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in time: milliseconds since the Unix epoch, as the `*_at` and
/// `run_at` columns store it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Millis(pub i64);

impl Millis {
    /// The number of milliseconds, as bound to SQL.
    pub fn get(self) -> i64 {
        self.0
    }

    /// This time plus `duration` (saturating).
    #[must_use]
    pub fn after(self, duration: Duration) -> Self {
        Self(self.0.saturating_add(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)))
    }

    /// This time plus `ms` milliseconds (saturating; negative goes back).
    #[must_use]
    pub fn plus_ms(self, ms: i64) -> Self {
        Self(self.0.saturating_add(ms))
    }
}

/// The time a lease is judged at: when one expires, when a job is due
/// (DESIGN invariant 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseTime {
    /// The database's clock, read by the statement itself: hosts whose
    /// clocks differ still agree on every lease.
    Database,
    /// This time: a test's hand-turned clock, standing for every host's.
    At(Millis),
}

impl LeaseTime {
    /// The time to bind, `None` for the database's clock.
    pub fn fixed(self) -> Option<Millis> {
        match self {
            Self::Database => None,
            Self::At(at) => Some(at),
        }
    }
}

/// A source of "now".
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time.
    fn now(&self) -> Millis;

    /// The time leases are judged at: the database's clock, unless this
    /// clock stands for every host's (a test's).
    fn lease_time(&self) -> LeaseTime {
        LeaseTime::Database
    }
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        Millis(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        )
    }
}

/// A clock that only moves when told to.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: Millis) -> Self {
        Self(Arc::new(AtomicI64::new(start.0)))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(i64::try_from(by.as_millis()).unwrap_or(i64::MAX), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Millis {
        Millis(self.0.load(Ordering::SeqCst))
    }

    /// Its own time: a test turning it stands for every host's clock.
    fn lease_time(&self) -> LeaseTime {
        LeaseTime::At(self.now())
    }
}

/// A shared clock.
pub type SharedClock = Arc<dyn Clock>;
