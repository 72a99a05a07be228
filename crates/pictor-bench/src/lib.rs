//! What Pictor's benchmark drivers share: the no-op job the queue is timed
//! with, and a runner timed until it has drained a number of them.

pub mod noop;
