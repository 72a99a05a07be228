//! Which child decoded an original for its sibling job: the first of an
//! image's two asset jobs is remembered against the child it ran on, so
//! that the other goes to the same child and finds the decode kept there.
//! An entry serves one sibling, and leaves after [`ENTRY_TTL`] (the sibling
//! ran elsewhere), when its child dies, or past [`CAPACITY`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Longest an entry waits for its sibling: the child keeps the decode as long.
pub const ENTRY_TTL: Duration = Duration::from_secs(15);
/// Most entries held (each one original key).
pub const CAPACITY: usize = 256;

/// Original key → the child (its slot in the pool) that decoded it.
#[derive(Debug, Default)]
pub struct Affinity {
    entries: HashMap<String, (usize, Instant)>,
}

impl Affinity {
    /// The child holding `key`'s decode, if one is remembered and fresh.
    pub fn child_for(&mut self, key: &str) -> Option<usize> {
        match self.entries.get(key) {
            Some(&(child, at)) if at.elapsed() < ENTRY_TTL => Some(child),
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Remembers that `child` decodes `key` for its sibling.
    pub fn remember(&mut self, key: &str, child: usize) {
        if self.entries.len() >= CAPACITY {
            self.entries.retain(|_, (_, at)| at.elapsed() < ENTRY_TTL);
        }
        while self.entries.len() >= CAPACITY {
            let Some(oldest) = self.entries.iter().min_by_key(|(_, (_, at))| *at).map(|(k, _)| k.clone()) else {
                break;
            };
            self.entries.remove(&oldest);
        }
        self.entries.insert(key.to_owned(), (child, Instant::now()));
    }

    /// Forgets `key` (its sibling came, or gave up waiting).
    pub fn forget(&mut self, key: &str) {
        self.entries.remove(key);
    }

    /// Forgets every key of `child`: it died, and its decodes with it.
    pub fn forget_child(&mut self, child: usize) {
        self.entries.retain(|_, (c, _)| *c != child);
    }

    /// How many siblings are expected on `child` (new work goes to the
    /// idle child fewest siblings want).
    pub fn expected_on(&self, child: usize) -> usize {
        self.entries.values().filter(|(c, at)| *c == child && at.elapsed() < ENTRY_TTL).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sibling_finds_the_child_of_the_first_job_once_it_is_remembered() {
        let mut affinity = Affinity::default();
        assert_eq!(affinity.child_for("originals/a"), None);

        affinity.remember("originals/a", 1);

        assert_eq!(affinity.child_for("originals/a"), Some(1));
        assert_eq!(affinity.child_for("originals/b"), None);
        assert_eq!((affinity.expected_on(1), affinity.expected_on(0)), (1, 0));
        affinity.forget("originals/a");
        assert_eq!(affinity.child_for("originals/a"), None, "a sibling that came is forgotten");
    }

    #[test]
    fn a_dead_child_takes_its_entries_with_it() {
        let mut affinity = Affinity::default();
        affinity.remember("originals/a", 0);
        affinity.remember("originals/b", 1);
        affinity.remember("originals/c", 0);

        affinity.forget_child(0);

        assert_eq!(affinity.child_for("originals/a"), None);
        assert_eq!(affinity.child_for("originals/c"), None);
        assert_eq!(affinity.child_for("originals/b"), Some(1));
    }

    #[test]
    fn no_more_than_capacity_entries_are_held_and_the_oldest_leave_first() {
        let mut affinity = Affinity::default();
        for i in 0..CAPACITY + 5 {
            affinity.remember(&format!("originals/{i}"), i % 2);
        }

        assert_eq!(affinity.entries.len(), CAPACITY);
        assert_eq!(affinity.child_for("originals/0"), None, "the oldest left");
        assert_eq!(affinity.child_for(&format!("originals/{}", CAPACITY + 4)), Some((CAPACITY + 4) % 2));
    }

    #[test]
    fn a_stale_entry_is_not_followed() {
        let mut affinity = Affinity::default();
        affinity.entries.insert("originals/a".into(), (1, Instant::now() - ENTRY_TTL - Duration::from_millis(1)));

        assert_eq!(affinity.child_for("originals/a"), None);
        assert_eq!(affinity.expected_on(1), 0);
    }
}
