//! Image work in child processes (DESIGN invariant 10): a decoder's crash,
//! hang or memory blow-up ends one request, never the service. The parent
//! keeps a [`pool`] of long-lived `pictor sandbox-child` processes and
//! speaks [`protocol`] frames on their pipes, passing file paths, never
//! pixels; each [`child`] runs under [`harden`]'s limits and keeps an
//! image's decode for its sibling job. Below the handlers, above imaging.

pub mod affinity;
pub mod child;
mod harden;
pub mod pool;
pub mod protocol;

use std::time::Duration;

use pictor_imaging::ImagingError;

pub use pool::{PoolSettings, ProcessPool};
pub use protocol::{Rendered, Request, Taker, Work};

/// Default `PICTOR_SANDBOX_MEMORY_MB`: a 100 Mpx image (the default pixel
/// limit) decoded whole as 16-bit RGBA is 800 MB, plus its 8-bit copy and
/// the resizer's buffers; 2 GB leaves headroom for the binary and libheif.
pub const DEFAULT_MEMORY_MB: u64 = 2048;
/// Smallest `PICTOR_SANDBOX_MEMORY_MB`: the binary and its libraries alone
/// take some 100 MB of address space.
pub const MIN_MEMORY_MB: u64 = 256;
/// Default `PICTOR_SANDBOX_TIMEOUT_SECS`: a 100 Mpx PNG takes a few seconds.
pub const DEFAULT_TIMEOUT_SECS: u64 = 60;

/// Where decoding and encoding run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImageSandbox {
    /// In child processes, limited and filtered ([`ProcessPool`]).
    Process,
    /// On threads of the service itself (the CPU pool): a crash in a C
    /// decoder takes the whole process down.
    Off,
}

/// Why image work in a child gave no assets.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The image could not be decoded or encoded: the child said why.
    #[error(transparent)]
    Imaging(#[from] ImagingError),
    /// The work panicked in the child (a bug, or a library's assertion).
    #[error("image processing crashed: {0}")]
    Panicked(String),
    /// The child died of a signal while working on the file.
    #[error("the image decoder crashed on this file (killed by {signal})")]
    Crashed {
        /// Its name, e.g. `SIGSEGV`.
        signal: String,
    },
    /// The child reached its memory limit.
    #[error("the image decoder ran out of its {limit_mb} MB memory limit (PICTOR_SANDBOX_MEMORY_MB)")]
    OutOfMemory {
        /// The limit, MB.
        limit_mb: u64,
    },
    /// The child overran its deadline and was killed.
    #[error("the image decoder ran past its {} deadline and was stopped (PICTOR_SANDBOX_TIMEOUT_SECS)", seconds(*after))]
    Deadline {
        /// The deadline.
        after: Duration,
    },
    /// Something outside Pictor killed the child.
    #[error("the image decoder was killed by SIGKILL from outside Pictor (the system's out-of-memory killer?)")]
    Killed,
    /// A child could not be started, or broke the protocol.
    #[error("{0}")]
    Broken(String),
}

/// A duration as people write it: `60 s`, or `1500 ms` below whole seconds.
pub(crate) fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 { format!("{} s", d.as_secs()) } else { format!("{} ms", d.as_millis()) }
}
