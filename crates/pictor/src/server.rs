//! The HTTP server under hostile clients: every connection must send its
//! headers within a deadline (slowloris), request bodies that go idle are
//! cut off, requests other than uploads have a whole-request deadline, and
//! a graceful shutdown waits for open connections only so long.
//!
//! `axum::serve` exposes none of these, so connections are served here
//! with hyper's HTTP/1 builder (its own header-read timer) and hyper-util's
//! graceful-shutdown watcher. HTTP/1 only, as before: Pictor sits behind a
//! proxy for HTTP/2 and TLS.

use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower_http::timeout::RequestBodyTimeoutLayer;

use crate::api_error::ApiError;
use crate::shutdown::Shutdown;

/// Default time a client has to send a request's headers, seconds.
pub const DEFAULT_HEADER_TIMEOUT_SECS: u64 = 10;
/// Default time a request body may go without sending anything, seconds.
pub const DEFAULT_BODY_IDLE_TIMEOUT_SECS: u64 = 30;
/// Default deadline of a whole request other than an upload, seconds.
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 30;

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
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
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
