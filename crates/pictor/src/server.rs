//! The HTTP server under hostile clients: every connection must send its
//! headers within a deadline (slowloris), request bodies that go idle are
//! cut off, requests other than uploads have a whole-request deadline, and
//! a graceful shutdown waits for open connections only so long.
//!
//! `axum::serve` exposes none of these, so connections are served here
//! with hyper's HTTP/1 builder (its own header-read timer) and hyper-util's
//! graceful-shutdown watcher. HTTP/1 only, as before: Pictor sits behind a
//! proxy for HTTP/2 and TLS.
//!
//! A request refused before its body is read (503 `too_busy`, 413) leaves
//! the client still sending. Closing a socket with unread data makes the
//! kernel send a reset, which can destroy the answer in the client's receive
//! buffer before the client reads it. Connections therefore close the way
//! nginx's `lingering_close` does ([`Lingering`]): shut down the write side,
//! then read and discard what the client still sends, for a bounded time.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tower_http::timeout::RequestBodyTimeoutLayer;

use crate::api_error::ApiError;
use crate::shutdown::Shutdown;

/// Default time a client has to send a request's headers, seconds.
pub const DEFAULT_HEADER_TIMEOUT_SECS: u64 = 10;
/// Default time a request body may go without sending anything, seconds.
pub const DEFAULT_BODY_IDLE_TIMEOUT_SECS: u64 = 30;
/// Default deadline of a whole request other than an upload, seconds.
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 30;
/// Longest a closing connection keeps reading what its client still sends.
const LINGER_TOTAL: Duration = Duration::from_secs(5);
/// A closing connection whose client sends nothing for this long is closed.
const LINGER_IDLE: Duration = Duration::from_secs(1);

/// How long clients get.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// To send the headers of each request.
    pub header: Duration,
    /// Between two pieces of a request body.
    pub body_idle: Duration,
    /// For a whole request, uploads excepted (their bodies may be long;
    /// the idle deadline still applies to them).
    pub request: Duration,
    /// For open connections to finish once a shutdown starts.
    pub shutdown: Duration,
}

/// Serves `router` on `listener` until `shutdown`, then waits for open
/// connections up to [`Deadlines::shutdown`] and drops the rest.
pub async fn serve(listener: TcpListener, router: Router, deadlines: Deadlines, shutdown: Shutdown) {
    let request = deadlines.request;
    let router = router
        .layer(axum::middleware::from_fn(move |req, next| whole_request_deadline(request, req, next)))
        .layer(RequestBodyTimeoutLayer::new(deadlines.body_idle));
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(deadlines.header);
    let graceful = GracefulShutdown::new();
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let service = TowerToHyperService::new(router.clone());
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(Lingering::new(stream)), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(deadlines.shutdown) => {
            tracing::warn!(deadline = ?deadlines.shutdown, "connections still open at the shutdown deadline were dropped");
        }
    }
}

/// Answers 408 when a request other than an upload is not answered in time.
async fn whole_request_deadline(deadline: Duration, request: Request, next: Next) -> Response {
    if request.uri().path() == "/api/upload" {
        return next.run(request).await;
    }
    match tokio::time::timeout(deadline, next.run(request)).await {
        Ok(response) => response,
        Err(_elapsed) => ApiError::Timeout(deadline.as_secs()).into_response(),
    }
}

/// A connection's socket that closes gracefully when dropped: see the module
/// documentation. Reads and writes go straight to the socket.
struct Lingering {
    stream: Option<TcpStream>,
}

impl Lingering {
    fn new(stream: TcpStream) -> Self {
        Self { stream: Some(stream) }
    }

    fn stream(&mut self) -> io::Result<Pin<&mut TcpStream>> {
        match self.stream.as_mut() {
            Some(stream) => Ok(Pin::new(stream)),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

impl AsyncRead for Lingering {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.stream()?.poll_read(cx, buf)
    }
}

impl AsyncWrite for Lingering {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.stream()?.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.stream()?.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.as_ref().is_some_and(AsyncWrite::is_write_vectored)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream()?.poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream()?.poll_shutdown(cx)
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        let Some(stream) = self.stream.take() else { return };
        // Outside a runtime (never while serving) the socket simply closes.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(linger(stream));
        }
    }
}

/// Sends FIN, then discards what the client sends until it closes, goes
/// quiet for [`LINGER_IDLE`], or [`LINGER_TOTAL`] passes; then closes.
async fn linger(mut stream: TcpStream) {
    // hyper has usually shut the write side down already; a second shutdown
    // is harmless, and a dead socket fails the reads below.
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 16 * 1024];
    let _ = tokio::time::timeout(LINGER_TOTAL, async {
        while let Ok(Ok(read)) = tokio::time::timeout(LINGER_IDLE, stream.read(&mut sink)).await {
            if read == 0 {
                break;
            }
        }
    })
    .await;
}
