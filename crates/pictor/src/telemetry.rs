//! Metrics: one Prometheus recorder per [`App`](crate::app::App), rendered
//! by `GET /metrics`. Each process serves its own. Parts record through
//! [`Telemetry::record`], which makes the App's recorder the current one
//! for a closure (`metrics::with_local_recorder`), so that several Apps in
//! one process (the tests) keep separate, exact counts.

use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::shutdown::Shutdown;

/// `pictor_http_requests_total{method, route, status}`: requests answered,
/// by matched route template (`unmatched` when none matched).
pub const HTTP_REQUESTS: &str = "pictor_http_requests_total";
/// `pictor_http_request_duration_seconds{method, route, status}`: time to
/// the response's head.
pub const HTTP_DURATION: &str = "pictor_http_request_duration_seconds";
/// `pictor_upload_bytes_total`: bytes of accepted uploads.
pub const UPLOAD_BYTES: &str = "pictor_upload_bytes_total";
/// `pictor_jobs{type, status}`: jobs in the database, at scrape time.
pub const JOBS: &str = "pictor_jobs";
/// `pictor_job_duration_seconds{type, outcome}`: a handler's run, by how the
/// attempt ended (`completed`, `retrying`, `failed`, `lease_lost`).
pub const JOB_DURATION: &str = "pictor_job_duration_seconds";
/// `pictor_job_retries_total{type}`: attempts that failed and were scheduled again.
pub const JOB_RETRIES: &str = "pictor_job_retries_total";
/// `pictor_job_failures_total{type}`: jobs that ended FAILED (rescued ones included).
pub const JOB_FAILURES: &str = "pictor_job_failures_total";
/// `pictor_job_rescues_total{type}`: jobs whose lease expired and that the rescuer took back.
pub const JOB_RESCUES: &str = "pictor_job_rescues_total";
/// `pictor_oldest_pending_job_age_seconds`: how long the oldest due PENDING
/// job has waited since it became due (0 when none), at scrape time.
pub const OLDEST_PENDING_AGE: &str = "pictor_oldest_pending_job_age_seconds";
/// `pictor_images{status}`: images in the database, at scrape time.
pub const IMAGES: &str = "pictor_images";
/// `pictor_cpu_pool_busy_ratio`: busy image-work slots (sandbox children, or CPU-pool
/// threads with the sandbox off) / slots, at scrape time.
pub const CPU_POOL_BUSY: &str = "pictor_cpu_pool_busy_ratio";

/// Histogram buckets, seconds: from a fast request to a slow image job.
const BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
/// How often histogram samples are folded into buckets when nobody scrapes
/// (they are kept until then).
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// A process's metrics: its recorder and what renders it. Cheap to clone.
#[derive(Clone)]
pub struct Telemetry {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Telemetry")
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    /// A recorder of its own, with Prometheus histograms (buckets, not
    /// quantile summaries: they aggregate across processes).
    pub fn new() -> Self {
        let builder = PrometheusBuilder::new();
        // Only an empty list is refused; the fallback (summaries) is never taken.
        let builder = builder.set_buckets(BUCKETS).unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = Arc::new(builder.build_recorder());
        let handle = recorder.handle();
        let telemetry = Self { recorder, handle };
        telemetry.record(describe);
        telemetry
    }

    /// Runs `f` with this process's recorder as the current one: the
    /// `metrics` macros inside record here.
    pub fn record<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(self.recorder.as_ref(), f)
    }

    /// The Prometheus text exposition of everything recorded.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Folds histogram samples every [`UPKEEP_INTERVAL`] until `shutdown`.
    pub async fn upkeep(&self, shutdown: Shutdown) {
        shutdown.every(UPKEEP_INTERVAL, || async { self.handle.run_upkeep() }).await;
    }
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(HTTP_REQUESTS, "HTTP requests answered, by matched route and status");
    describe_histogram!(HTTP_DURATION, Unit::Seconds, "Time to the response's head");
    describe_counter!(UPLOAD_BYTES, Unit::Bytes, "Bytes of accepted uploads");
    describe_gauge!(JOBS, "Jobs by type and status");
    describe_histogram!(JOB_DURATION, Unit::Seconds, "Handler run time by job type and outcome");
    describe_counter!(JOB_RETRIES, "Failed attempts scheduled again");
    describe_counter!(JOB_FAILURES, "Jobs that ended FAILED");
    describe_counter!(JOB_RESCUES, "Jobs taken back after their lease expired");
    describe_gauge!(OLDEST_PENDING_AGE, Unit::Seconds, "Wait of the oldest due PENDING job");
    describe_gauge!(IMAGES, "Images by status");
    describe_gauge!(CPU_POOL_BUSY, "Busy share of the image-work slots (sandbox children or CPU-pool threads)");
}
