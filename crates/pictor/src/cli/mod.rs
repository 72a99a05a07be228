//! The client side of the `pictor` binary: one file per subcommand, each
//! talking to a server through `pictor_client` (except `doctor`, which reads
//! the local configuration, and `reprocess`, a service command run by `main`
//! on the configured database). Human tables by default, JSON with `--json`.
//!
//! Exit codes: [`EXIT_OK`], [`EXIT_SOME_FAILED`], [`EXIT_USAGE`].

pub mod cancel;
pub mod delete;
pub mod doctor;
pub mod edit;
pub mod image;
pub mod images;
pub mod job;
pub mod jobs;
pub mod reprocess;
pub mod retry;
mod table;
pub mod upload;
pub mod watch;

use std::io::Write;
use std::process::ExitCode;

use clap::Args;
use pictor_client::{Client, DEFAULT_SERVER};
use serde::Serialize;

use crate::command::Command;
use crate::config::Secret;

/// Everything asked for was done.
pub const EXIT_OK: u8 = 0;
/// The server answered, but some items failed (an upload refused, an image
/// FAILED, an unknown id, a job in the wrong state, a doctor check failed).
pub const EXIT_SOME_FAILED: u8 = 1;
/// Bad usage, or no server to talk to: unreachable address, invalid URL,
/// refused token. Nothing was done.
pub const EXIT_USAGE: u8 = 2;

/// How a subcommand that ran to its end went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything succeeded.
    Done,
    /// Some items failed; the output says which.
    SomeFailed,
}

/// A usage error found after parsing (exit [`EXIT_USAGE`]).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Where the server is and how to talk to it; every client subcommand has these.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Base URL of the Pictor server.
    #[arg(long = "server", env = "API_BASE", default_value = DEFAULT_SERVER)]
    pub server: String,
    /// Admin token, sent as `Authorization: Bearer TOKEN`.
    #[arg(long, env = "PICTOR_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<Secret>,
    /// Print JSON instead of a human table.
    #[arg(long)]
    pub json: bool,
}

impl ServerArgs {
    /// A client of the server these arguments name.
    ///
    /// # Errors
    /// The server address is not a usable URL.
    pub fn client(&self) -> Result<Client, pictor_client::Error> {
        let client = Client::new(&self.server)?;
        Ok(match &self.token {
            Some(token) => client.with_token(token.expose()),
            None => client,
        })
    }
}

/// Runs a client subcommand and turns its result into the documented exit
/// code, printing the whole cause chain of an error on one line.
pub async fn run(command: Command) -> ExitCode {
    let result = match command {
        Command::Upload(args) => upload::run(args).await,
        Command::Images(args) => images::run(args).await,
        Command::Image(args) => image::run(args).await,
        Command::Jobs(args) => jobs::run(args).await,
        Command::Job(args) => job::run(args).await,
        Command::Retry(args) => retry::run(args).await,
        Command::Cancel(args) => cancel::run(args).await,
        Command::Delete(args) => delete::run(args).await,
        Command::Edit(args) => edit::run(args).await,
        Command::Watch(args) => watch::run(args).await,
        Command::Doctor(args) => doctor::run(args).await,
        Command::Serve(_)
        | Command::Worker(_)
        | Command::Migrate(_)
        | Command::Gc(_)
        | Command::Reprocess(_)
        | Command::Storage(_)
        | Command::SandboxChild(_) => {
            Err(UsageError("serve, worker, migrate, gc, reprocess and storage are service commands".into()).into())
        }
    };
    match result {
        Ok(Outcome::Done) => ExitCode::from(EXIT_OK),
        Ok(Outcome::SomeFailed) => ExitCode::from(EXIT_SOME_FAILED),
        Err(e) => {
            eprintln!("pictor: {e:#}");
            ExitCode::from(exit_code_of(&e))
        }
    }
}

/// [`EXIT_USAGE`] when nothing could be asked of the server, else
/// [`EXIT_SOME_FAILED`].
fn exit_code_of(error: &anyhow::Error) -> u8 {
    let usage = error.chain().any(|cause| {
        cause.is::<UsageError>()
            || cause.downcast_ref::<pictor_client::Error>().is_some_and(|e| e.is_connect() || e.status() == Some(401))
    });
    if usage { EXIT_USAGE } else { EXIT_SOME_FAILED }
}

/// Writes to stdout; a closed pipe (`pictor images | head`) is not an error.
///
/// # Errors
/// Stdout failed for another reason.
pub fn out(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// Prints a value as pretty JSON followed by a newline.
///
/// # Errors
/// Stdout failed.
pub fn out_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    out(&text)
}

/// `-` for nothing.
fn or_dash(value: Option<&str>) -> &str {
    value.filter(|v| !v.is_empty()).unwrap_or("-")
}

/// An RFC 3339 time as `YYYY-MM-DD HH:MM:SS` (UTC, as the server sends it).
fn short_time(rfc3339: &str) -> String {
    rfc3339.get(..19).unwrap_or(rfc3339).replacen('T', " ", 1)
}

/// The line under a list: which items of how many are shown.
fn page_footer(what: &str, shown: usize, pagination: &pictor_client::models::Pagination) -> String {
    if shown == 0 {
        return format!("no {what} (of {} in all)\n", pagination.total);
    }
    let more = if pagination.has_more {
        format!("; next page: --offset {}", pagination.offset + shown as u64)
    } else {
        String::new()
    };
    format!("{what} {}–{} of {}{more}\n", pagination.offset + 1, pagination.offset + shown as u64, pagination.total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16) -> anyhow::Error {
        pictor_client::Error::Api { status, code: "x".into(), message: "y".into() }.into()
    }

    #[test]
    fn no_server_to_talk_to_exits_2_and_a_refused_item_exits_1() {
        let invalid = pictor_client::Client::new("pictor").expect_err("not a URL");

        assert_eq!(exit_code_of(&invalid.into()), EXIT_USAGE);
        assert_eq!(exit_code_of(&api(401)), EXIT_USAGE);
        assert_eq!(exit_code_of(&UsageError("bad".into()).into()), EXIT_USAGE);
        assert_eq!(exit_code_of(&api(404)), EXIT_SOME_FAILED);
        assert_eq!(exit_code_of(&api(409).context("retrying job 3")), EXIT_SOME_FAILED);
    }

    #[test]
    fn the_page_footer_points_at_the_next_page() {
        let pagination =
            pictor_client::models::Pagination { total: 120, limit: 50, offset: 50, has_more: true, next_cursor: None };

        assert_eq!(page_footer("jobs", 50, &pagination), "jobs 51–100 of 120; next page: --offset 100\n");
        assert_eq!(short_time("2026-11-29T20:52:29.123Z"), "2026-11-29 20:52:29");
    }
}
