//! The retry policy: exponential backoff with jitter, capped.

/// First retry delay.
pub const DEFAULT_BASE_DELAY_MS: i64 = 2_000;
/// Longest retry delay.
pub const DEFAULT_MAX_DELAY_MS: i64 = 10 * 60 * 1_000;
/// Jitter as a fraction of the delay, either way.
pub const DEFAULT_JITTER: f64 = 0.2;
/// Longest wait of a job for an exhausted resource (a full disk), before
/// jitter: how late, at most, work resumes once space is freed.
pub const MAX_WAIT_FOR_RESOURCE_MS: i64 = 30_000;

/// How long a failed job waits before its next attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Delay after the first failed attempt, ms.
    pub base_delay_ms: i64,
    /// Cap on the delay, ms.
    pub max_delay_ms: i64,
    /// Fraction of the delay added or removed at random, so that jobs that
    /// failed together do not retry together.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { base_delay_ms: DEFAULT_BASE_DELAY_MS, max_delay_ms: DEFAULT_MAX_DELAY_MS, jitter: DEFAULT_JITTER }
    }
}

impl RetryPolicy {
    /// The delay after failed attempt number `attempt` (1-based), given a
    /// uniform random `unit` in `[0, 1)`: `base · 2^(attempt-1)`, capped,
    /// then scaled by `1 ± jitter`.
    pub fn delay_ms(&self, attempt: i64, unit: f64) -> i64 {
        let doublings = u32::try_from(attempt.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
        let raw = self.base_delay_ms.saturating_mul(1_i64 << doublings).min(self.max_delay_ms);
        let scale = 1.0 + self.jitter * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        // Whole milliseconds are plenty; the cast cannot overflow after the cap.
        ((raw as f64) * scale).round().max(0.0) as i64
    }

    /// The delay after `attempt` with fresh randomness.
    pub fn next_delay_ms(&self, attempt: i64) -> i64 {
        self.delay_ms(attempt, fastrand::f64())
    }

    /// The delay of a job waiting for an exhausted resource after `waits`
    /// such failures in a row: the same backoff, capped at
    /// [`MAX_WAIT_FOR_RESOURCE_MS`], with fresh randomness.
    pub fn next_wait_ms(&self, waits: i64) -> i64 {
        let capped = Self { max_delay_ms: self.max_delay_ms.min(MAX_WAIT_FOR_RESOURCE_MS), ..*self };
        capped.delay_ms(waits, fastrand::f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_and_stops_at_the_cap() {
        let policy = RetryPolicy { base_delay_ms: 1_000, max_delay_ms: 30_000, jitter: 0.0 };
        let schedule: Vec<i64> = (1..=7).map(|a| policy.delay_ms(a, 0.5)).collect();
        assert_eq!(schedule, vec![1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]);
        assert_eq!(policy.delay_ms(1_000, 0.5), 30_000, "huge attempt counts do not overflow");
    }

    #[test]
    fn waits_for_a_resource_back_off_like_retries_but_stop_at_their_own_cap() {
        let policy = RetryPolicy { jitter: 0.0, ..RetryPolicy::default() };
        let waits: Vec<i64> = (1..=6).map(|w| policy.next_wait_ms(w)).collect();
        assert_eq!(waits, vec![2_000, 4_000, 8_000, 16_000, MAX_WAIT_FOR_RESOURCE_MS, MAX_WAIT_FOR_RESOURCE_MS]);
        let short = RetryPolicy { base_delay_ms: 100, max_delay_ms: 400, jitter: 0.0 };
        assert_eq!(short.next_wait_ms(10), 400, "a shorter cap of the policy wins");
    }

    #[test]
    fn jitter_stays_within_its_fraction_either_way() {
        let policy = RetryPolicy { base_delay_ms: 10_000, max_delay_ms: 60_000, jitter: 0.2 };
        assert_eq!(policy.delay_ms(1, 0.0), 8_000);
        assert_eq!(policy.delay_ms(1, 1.0), 12_000);
        for _ in 0..1_000 {
            let d = policy.next_delay_ms(2);
            assert!((16_000..=24_000).contains(&d), "{d} outside ±20 % of 20 s");
        }
    }
}
