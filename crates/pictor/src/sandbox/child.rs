//! `pictor sandbox-child`: the loop a sandbox child runs. It hardens itself
//! ([`super::harden`]), says it is ready, then answers one [`Request`] at a
//! time until its stdin closes: it reads the original from the path given,
//! decodes it (or takes the decode it kept for the sibling job), renders,
//! and replies with the encoded assets.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use pictor_imaging::{ImagingError, Prepared, RenderOptions};

use super::protocol::{self, Reply, Request, Taker, WireError};

/// The hidden subcommand a parent starts its children with.
pub const SUBCOMMAND: &str = "sandbox-child";
/// Set to `1` in a child's environment (only by a parent built with
/// `Overrides::sandbox_test_hooks`, never from the parent's own environment)
/// to arm the test hooks.
pub const TEST_HOOKS_ENV: &str = "PICTOR_SANDBOX_TEST_HOOKS";
/// An original holding these bytes followed by `segv`, `hang`, `alloc` or
/// `socket` sets off that test hook, when hooks are armed.
pub const TEST_MARKER: &[u8] = b"PICTOR-SANDBOX-TEST:";

/// Longest a decode is kept for the sibling job.
pub const KEPT_DECODE_TTL: Duration = Duration::from_secs(15);
/// Most decodes kept at once (each a preview-sized buffer, ~12 MB at 2048 px).
pub const KEPT_DECODES: usize = 4;

/// Runs the child until its parent closes stdin (exit 0), or the pipe
/// breaks (exit 1).
pub fn run(memory_mb: u64) -> ExitCode {
    let applied = super::harden::apply(memory_mb);
    let mut replies = match super::harden::replies() {
        Ok(file) => std::io::BufWriter::new(file),
        Err(e) => {
            eprintln!("pictor sandbox-child: cannot set up its reply pipe: {e}");
            return ExitCode::from(1);
        }
    };
    let hooks = std::env::var_os(TEST_HOOKS_ENV).is_some_and(|v| v == "1");
    let mut requests = std::io::stdin().lock();
    if let Err(e) = send(&mut replies, &Reply::Ready { applied }, &[]) {
        eprintln!("pictor sandbox-child: cannot reply: {e}");
        return ExitCode::from(1);
    }
    let mut kept = KeptDecodes::default();
    loop {
        let request: Request = match protocol::read_frame(&mut requests) {
            Ok(Some((request, _))) => request,
            Ok(None) => return ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("pictor sandbox-child: cannot read a request: {e}");
                return ExitCode::from(1);
            }
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| serve(&request, &mut kept, hooks)));
        let (reply, body) = match outcome {
            Ok(Ok(rendered)) => protocol::rendered_reply(rendered),
            Ok(Err(e)) => (Reply::Failed { error: WireError::from(&e) }, Vec::new()),
            Err(panic) => {
                let message = pictor_imaging::panic_message(panic.as_ref()).to_owned();
                (Reply::Failed { error: WireError::Panicked { message } }, Vec::new())
            }
        };
        if let Err(e) = send(&mut replies, &reply, &body) {
            eprintln!("pictor sandbox-child: cannot reply: {e}");
            return ExitCode::from(1);
        }
    }
}

fn send(out: &mut impl std::io::Write, reply: &Reply, body: &[u8]) -> Result<(), protocol::ProtocolError> {
    out.write_all(&protocol::encode(reply, body)?)?;
    out.flush()?;
    Ok(())
}

/// One request: the prepared pixels, then the work.
fn serve(request: &Request, kept: &mut KeptDecodes, hooks: bool) -> Result<protocol::Rendered, ImagingError> {
    let options = RenderOptions::from(&request.options);
    let decode = || -> Result<Prepared, ImagingError> {
        let data = std::fs::read(&request.path).map_err(|e| {
            ImagingError::Io(std::io::Error::new(e.kind(), format!("cannot read {}: {e}", request.path.display())))
        })?;
        if hooks {
            test_hook(&data)?;
        }
        pictor_imaging::prepare(&data, request.edge, &options)
    };
    let prepared = match request.share {
        Some(taker) => kept.get_or_decode(&request.key, request.edge, taker, decode)?,
        None => Rc::new(decode()?),
    };
    request.work.render(&prepared, &options)
}

/// Decodes kept for the sibling job, like the in-process
/// [`SharedDecodes`](crate::handlers::SharedDecodes): an entry leaves once
/// both jobs took it, after [`KEPT_DECODE_TTL`], or past [`KEPT_DECODES`].
#[derive(Default)]
struct KeptDecodes {
    entries: Vec<Kept>,
}

struct Kept {
    key: String,
    edge: u32,
    prepared: Rc<Prepared>,
    taken_by: Taker,
    at: Instant,
}

impl KeptDecodes {
    fn get_or_decode(
        &mut self,
        key: &str,
        edge: u32,
        taker: Taker,
        decode: impl FnOnce() -> Result<Prepared, ImagingError>,
    ) -> Result<Rc<Prepared>, ImagingError> {
        self.entries.retain(|e| e.at.elapsed() < KEPT_DECODE_TTL);
        let found = self.entries.iter().position(|e| e.key == key && e.edge == edge && e.taken_by != taker);
        if let Some(index) = found {
            // Both jobs have it now: nothing more to keep it for.
            return Ok(self.entries.swap_remove(index).prepared);
        }
        let prepared = Rc::new(decode()?);
        if self.entries.len() >= KEPT_DECODES {
            self.entries.remove(0);
        }
        self.entries.push(Kept {
            key: key.to_owned(),
            edge,
            prepared: prepared.clone(),
            taken_by: taker,
            at: Instant::now(),
        });
        Ok(prepared)
    }
}

/// The test hooks: a decoder that crashes, hangs, eats memory, or tries the
/// network, set off by [`TEST_MARKER`] inside an otherwise valid image.
fn test_hook(data: &[u8]) -> Result<(), ImagingError> {
    let Some(at) = data.windows(TEST_MARKER.len()).position(|w| w == TEST_MARKER) else {
        return Ok(());
    };
    let rest = &data[at + TEST_MARKER.len()..];
    if rest.starts_with(b"segv") {
        // Rust's own SIGSEGV handler (for stack overflows) lets a raised
        // signal return; a real fault re-runs its instruction and dies. Back
        // to the default action, the raised one dies as a C decoder's would.
        #[cfg(unix)]
        // SAFETY: resetting a signal's action and raising it in this process: the crash the hook is for.
        unsafe {
            libc::signal(libc::SIGSEGV, libc::SIG_DFL);
            libc::raise(libc::SIGSEGV);
        }
    } else if rest.starts_with(b"hang") {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    } else if rest.starts_with(b"alloc") {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            // Written, not just reserved: the pages are really used.
            hoard.push(std::hint::black_box(vec![1_u8; 16 << 20]));
        }
    } else if rest.starts_with(b"socket") {
        let outcome = match std::net::UdpSocket::bind("127.0.0.1:0") {
            Ok(_) => "a socket was opened".to_owned(),
            Err(e) => format!("socket refused: {e}"),
        };
        return Err(ImagingError::Internal(format!("test hook: {outcome}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Result<Prepared, ImagingError> {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/images/tiny-microaneurysms.png");
        let data = std::fs::read(&path).expect("a test image");
        pictor_imaging::prepare(&data, 64, &RenderOptions::default())
    }

    #[test]
    fn the_sibling_takes_the_kept_decode_and_then_it_leaves() {
        let mut kept = KeptDecodes::default();
        let first = kept.get_or_decode("originals/a", 64, Taker::Thumbnails, tiny).expect("decoded");

        let second = kept
            .get_or_decode("originals/a", 64, Taker::Preview, || Err(ImagingError::Internal("decoded twice".into())))
            .expect("kept");

        assert!(Rc::ptr_eq(&first, &second));
        assert!(kept.entries.is_empty(), "both took it");
    }

    #[test]
    fn a_retry_of_the_same_job_decodes_again_and_other_edges_are_not_shared() {
        let mut kept = KeptDecodes::default();
        kept.get_or_decode("originals/a", 64, Taker::Preview, tiny).expect("decoded");

        let again = kept.get_or_decode("originals/a", 64, Taker::Preview, || Err(ImagingError::Corrupt("anew".into())));
        let other_edge =
            kept.get_or_decode("originals/a", 32, Taker::Thumbnails, || Err(ImagingError::Corrupt("anew".into())));

        assert_eq!(again.expect_err("decoded anew").to_string(), "anew");
        assert_eq!(other_edge.expect_err("decoded anew").to_string(), "anew");
        for i in 0..KEPT_DECODES + 2 {
            kept.get_or_decode(&format!("originals/{i}"), 64, Taker::Preview, tiny).expect("decoded");
        }
        assert_eq!(kept.entries.len(), KEPT_DECODES);
    }

    #[test]
    fn the_socket_hook_reports_what_happened_and_no_marker_sets_nothing_off() {
        assert!(test_hook(b"\xff\xd8 an ordinary image").is_ok());

        let reported = test_hook(b"\xff\xd8PICTOR-SANDBOX-TEST:socket").expect_err("the hook reports");

        assert!(reported.to_string().starts_with("internal imaging error: test hook: "), "{reported}");
    }
}
