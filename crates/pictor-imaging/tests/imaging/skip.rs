//! Skips made visible: cargo hides a passing test's output, so a test that
//! cannot run here (a missing PostgreSQL, browser, Node or libheif) says so
//! on stderr *and* appends a line to `PICTOR_SKIP_LOG` when it is set, which
//! `scripts/test` prints as a list at the end. On CI a skip is a failure.

use std::io::Write as _;

/// Records that `test` did not run here, and why. Panics on CI, where every
/// dependency is installed.
pub fn skip(test: &str, why: &str) {
    eprintln!("SKIPPED {test}: {why}");
    if let Some(log) = std::env::var_os("PICTOR_SKIP_LOG")
        && let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(log)
    {
        let _ = writeln!(file, "{test}: {why}");
    }
    assert!(std::env::var_os("CI").is_none(), "{test}: cannot run on CI: {why}");
}
