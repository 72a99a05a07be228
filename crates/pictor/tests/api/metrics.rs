//! `GET /metrics`: present and moving after an upload, on `serve` and on a
//! `pictor worker --metrics-bind` process; behind the admin token once set.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use pictor::app::Overrides;
use pictor::config::Secret;
use pictor_client::models::ImageStatus;

use crate::helpers::{TestApp, spawn_app_on, spawn_app_with, testdata};
use crate::processes::start;

const PHOTO: &str = "mpl-grace-hopper.jpg";
const JOB_TYPES: [&str; 3] = ["OFFLOAD_ORIGINAL", "THUMBNAIL_GENERATION", "PREVIEW_GENERATION"];

/// One sample of a Prometheus text exposition.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeSet<(String, String)>,
    value: f64,
}

/// The samples of a scrape (comments skipped). Label values here never
/// hold `,` or `"`, so a plain split is enough.
fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("series value");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').expect("label=value");
                    (k.to_owned(), v.trim_matches('"').to_owned())
                })
                .collect();
            Sample { name: name.to_owned(), labels, value: value.parse().expect("a number") }
        })
        .collect()
}

/// The value of the one sample of `name` carrying `labels` (among others),
/// summed over the others; `None` when there is none.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.contains(&((*k).to_owned(), (*v).to_owned()))))
        .collect();
    (!matching.is_empty()).then(|| matching.iter().map(|s| s.value).sum())
}

async fn scrape(client: &reqwest::Client, base: &str) -> Vec<Sample> {
    let response = client.get(format!("{base}/metrics")).send().await.expect("metrics");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().expect("ascii").to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    parse(&response.text().await.expect("body"))
}

/// Scrapes until `ready` holds (the completer records a job's run just
/// after its commit, which the image's status shows first).
async fn scrape_until(client: &reqwest::Client, base: &str, ready: impl Fn(&[Sample]) -> bool) -> Vec<Sample> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let samples = scrape(client, base).await;
        if ready(&samples) || Instant::now() > deadline {
            return samples;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn jobs_finished(samples: &[Sample]) -> bool {
    JOB_TYPES.iter().all(|t| {
        value(samples, "pictor_job_duration_seconds_count", &[("type", t), ("outcome", "completed")]) == Some(1.0)
    })
}

async fn upload_and_wait_stored(app: &TestApp) -> String {
    let id = app.upload_ok(PHOTO).await;
    let image = app.wait_terminal(&id, Duration::from_secs(60)).await;
    assert_eq!(image.status, ImageStatus::Stored, "{image:?}");
    id
}

both_backends! {
    async fn metrics_on_serve_move_after_an_upload(backend) {
        let Some(app) = spawn_app_on(backend, |_| {}, Overrides::default(), true).await else { return };
        let upload_route = [("method", "POST"), ("route", "/api/upload"), ("status", "201")];
        let before = scrape(&app.client, &app.base).await;

        let id = upload_and_wait_stored(&app).await;
        let after = scrape_until(&app.client, &app.base, jobs_finished).await;

        assert_eq!(value(&before, "pictor_http_requests_total", &upload_route), None);
        assert_eq!(value(&after, "pictor_http_requests_total", &upload_route), Some(1.0));
        assert_eq!(value(&after, "pictor_http_request_duration_seconds_count", &upload_route), Some(1.0));
        let image_route = [("route", "/api/images/{id}"), ("status", "200")];
        assert!(value(&after, "pictor_http_requests_total", &image_route).is_some_and(|n| n >= 1.0), "the template");
        assert!(after.iter().all(|s| s.labels.iter().all(|(_, v)| !v.contains(&id))), "no raw path as a label");
        let size = std::fs::metadata(testdata(PHOTO)).expect("photo").len();
        #[allow(clippy::cast_precision_loss)]
        let size = size as f64;
        assert_eq!(value(&before, "pictor_upload_bytes_total", &[]), None);
        assert_eq!(value(&after, "pictor_upload_bytes_total", &[]), Some(size));
        for kind in JOB_TYPES {
            assert_eq!(value(&before, "pictor_jobs", &[("type", kind), ("status", "COMPLETED")]), Some(0.0), "{kind}");
            assert_eq!(value(&after, "pictor_jobs", &[("type", kind), ("status", "COMPLETED")]), Some(1.0), "{kind}");
            assert_eq!(value(&after, "pictor_jobs", &[("type", kind), ("status", "PENDING")]), Some(0.0), "{kind}");
        }
        assert!(jobs_finished(&after), "a duration per job, by type and outcome");
        assert_eq!(value(&before, "pictor_images", &[("status", "STORED")]), Some(0.0));
        assert_eq!(value(&after, "pictor_images", &[("status", "STORED")]), Some(1.0));
        assert_eq!(value(&after, "pictor_oldest_pending_job_age_seconds", &[]), Some(0.0));
        let busy = value(&after, "pictor_cpu_pool_busy_ratio", &[]).expect("the CPU pool's share");
        assert!((0.0..=1.0).contains(&busy), "{busy}");
        app.stop().await;
    }
}

both_backends! {
    async fn a_worker_with_metrics_bind_serves_its_own_metrics(backend) {
        let Some(api) = spawn_app_on(backend, |_| {}, Overrides::default(), false).await else { return };
        let env = [("PICTOR_RUNNER_POLL_INTERVAL_MS", "100")];
        let mut worker = start(api.dir.path(), &api.database_url, &["worker", "--metrics-bind", "127.0.0.1:0"], &env);
        let base = format!("http://{}", worker.address());
        worker.wait_for_log("job runner started", Duration::from_secs(60));
        let client = reqwest::Client::new();
        let before = scrape(&client, &base).await;

        upload_and_wait_stored(&api).await;
        let after = scrape_until(&client, &base, jobs_finished).await;
        let on_api = scrape(&api.client, &api.base).await;

        assert!(!jobs_finished(&before));
        assert!(jobs_finished(&after), "the worker ran the jobs and recorded them: {after:?}");
        for kind in JOB_TYPES {
            assert_eq!(value(&after, "pictor_jobs", &[("type", kind), ("status", "COMPLETED")]), Some(1.0), "{kind}");
            assert_eq!(value(&on_api, "pictor_job_duration_seconds_count", &[("type", kind)]), None, "not the API's");
        }
        let metrics_route = [("route", "/metrics"), ("status", "200")];
        assert!(value(&after, "pictor_http_requests_total", &metrics_route).is_some_and(|n| n >= 1.0));
        assert_eq!(value(&after, "pictor_upload_bytes_total", &[]), None, "uploads are the API's");
        for probe in ["/healthz", "/readyz"] {
            let status = client.get(format!("{base}{probe}")).send().await.expect("probe").status();
            assert_eq!(status, 200, "{probe}");
        }
        assert!(worker.stop(), "the worker exits cleanly on SIGTERM, its listener too");
        api.stop().await;
    }
}

#[tokio::test]
async fn with_an_admin_token_metrics_need_it_and_the_probes_do_not() {
    let token = "metrics-token-123";
    let app = spawn_app_with(|c| c.admin_token = Some(Secret::new(token)), Overrides::default(), false).await;

    let anonymous = app.client.get(app.url("/metrics")).send().await.expect("metrics").status();
    let with_token = app.client.get(app.url("/metrics")).bearer_auth(token).send().await.expect("metrics");

    assert_eq!(anonymous, 401);
    assert_eq!(with_token.status(), 200);
    assert!(with_token.text().await.expect("body").contains("pictor_jobs{"));
    for probe in ["/healthz", "/readyz"] {
        assert_eq!(app.client.get(app.url(probe)).send().await.expect("probe").status(), 200, "{probe}");
    }
    app.stop().await;
}

#[test]
fn the_parser_reads_labels_and_values() {
    let samples = parse("# HELP x y\nx_total{a=\"1\",b=\"/p/{id}\"} 3\ny 0.5\n");

    assert_eq!(value(&samples, "x_total", &[("b", "/p/{id}")]), Some(3.0));
    assert_eq!(value(&samples, "y", &[]), Some(0.5));
    assert_eq!(value(&samples, "x_total", &[("a", "2")]), None);
}
