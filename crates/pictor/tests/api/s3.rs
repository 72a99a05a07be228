//! Pictor on object storage, against a real S3-API server (moto): the
//! pipeline to STORED with the assets served through Pictor (ETag, Range)
//! and a bucket holding exactly the originals and assets; delete safety of
//! shared originals; `serve --no-runner` with two workers that share only
//! PostgreSQL and the bucket, one killed -9; a bucket that stops answering
//! mid-run.

use std::time::{Duration, Instant};

use object_store::{Attribute, ObjectStoreExt as _};
use pictor::app::Overrides;
use pictor_client::models::ImageStatus;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::helpers::{Backend, TestApp, drop_database, files_under, fresh_database, spawn_app_on, testdata};
use crate::moto::{BUCKET, Moto, PREFIX};
use crate::processes::{kill_while_it_holds_a_job, start, upload};

const PHOTO: &str = "mpl-grace-hopper.jpg";

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The keys an image's original and five assets have.
fn keys_of(id: &str, checksum: &str) -> Vec<String> {
    let mut keys = vec![format!("originals/{}/{checksum}", &checksum[..2])];
    keys.extend([64, 128, 256, 512].map(|size| format!("assets/{id}/thumb-{size}.jpg")));
    keys.push(format!("assets/{id}/preview.jpg"));
    keys
}

/// Pictor on `backend` storing in moto's bucket, with its own scratch folder.
async fn s3_app(
    backend: Backend,
    moto: &Moto,
    scratch: &std::path::Path,
    configure: impl FnOnce(&mut pictor::config::Config),
    overrides: Overrides,
) -> Option<TestApp> {
    spawn_app_on(
        backend,
        |c| {
            moto.configure(c);
            c.scratch_dir = Some(scratch.to_owned());
            configure(c);
        },
        overrides,
        true,
    )
    .await
}

async fn delete(app: &TestApp, id: &str) {
    let response = app.client.delete(app.url(&format!("/api/images/{id}"))).send().await.expect("delete");
    assert_eq!(response.status(), 204, "DELETE {id}");
}

both_backends! {
    async fn an_upload_on_s3_ends_stored_with_its_assets_served_from_the_bucket(backend) {
        let Some(moto) = Moto::start("s3::an_upload_on_s3_ends_stored").await else { return };
        let scratch = tempfile::tempdir().expect("scratch");
        let Some(app) = s3_app(backend, &moto, scratch.path(), |_| {}, Overrides::default()).await else { return };
        let id = app.upload_ok(PHOTO).await;
        let image = app.wait_terminal(&id, Duration::from_secs(120)).await;
        assert_eq!(image.status, ImageStatus::Stored, "{:?}", image.error);

        let photo = std::fs::read(testdata(PHOTO)).expect("photo");
        let mut expected = keys_of(&id, &sha256(&photo));
        expected.sort();
        assert_eq!(moto.keys().await, expected, "the bucket holds the original and five assets, nothing in tmp/");
        let store = moto.store();
        let original = store.get(&format!("{PREFIX}/{}", expected.last().expect("original")).into()).await;
        assert_eq!(original.expect("original").bytes().await.expect("bytes").as_ref(), photo.as_slice());
        assert!(files_under(&app.dir.path().join("storage")).iter().all(|f| f.starts_with(app.dir.path().join("storage/tmp"))),
            "nothing is kept in the local folder");
        let scratch_files: Vec<_> = files_under(scratch.path());
        assert!(scratch_files.is_empty(), "the scratch copies are removed after decoding: {scratch_files:?}");

        let mut urls: Vec<String> = image.thumbnails.values().cloned().collect();
        urls.push(image.preview_path.clone().expect("preview"));
        assert_eq!(urls.len(), 5);
        for url in &urls {
            let response = app.client.get(app.url(url)).send().await.expect("asset");
            assert_eq!(response.status(), 200, "{url}");
            let headers = response.headers().clone();
            assert_eq!(headers["content-type"], "image/jpeg");
            assert_eq!(headers["cache-control"], "public, max-age=31536000, immutable");
            let etag = headers["etag"].to_str().expect("etag").to_owned();
            assert!(etag.starts_with('"') && etag.len() > 2, "a strong ETag: {etag}");
            let body = response.bytes().await.expect("body");
            let key = format!("{PREFIX}/{}", url.trim_start_matches('/'));
            let stored = store.get(&key.as_str().into()).await.expect("asset in the bucket");
            assert_eq!(stored.attributes.get(&Attribute::ContentType).map(|v| v.as_ref()), Some("image/jpeg"));
            assert_eq!(
                stored.attributes.get(&Attribute::CacheControl).map(|v| v.as_ref()),
                Some("public, max-age=31536000, immutable")
            );
            assert_eq!(stored.bytes().await.expect("bytes"), body, "{url} is served from the bucket");

            let again = app.client.get(app.url(url)).header("if-none-match", &etag).send().await.expect("revalidate");
            assert_eq!(again.status(), 304, "{url} revalidates");
            let part = app.client.get(app.url(url)).header("range", "bytes=10-109").send().await.expect("range");
            assert_eq!(part.status(), 206, "{url}");
            assert_eq!(part.headers()["content-range"], format!("bytes 10-109/{}", body.len()).as_str());
            assert_eq!(part.bytes().await.expect("part"), body.slice(10..110));
            let past = app.client.get(app.url(url)).header("range", format!("bytes={}-", body.len())).send().await;
            assert_eq!(past.expect("range").status(), 416, "a range past the end");
        }
        app.stop().await;
    }
}

both_backends! {
    async fn on_s3_a_shared_original_stays_until_its_last_image_is_deleted(backend) {
        let Some(moto) = Moto::start("s3::on_s3_a_shared_original_stays").await else { return };
        let scratch = tempfile::tempdir().expect("scratch");
        let Some(app) = s3_app(backend, &moto, scratch.path(), |_| {}, Overrides::default()).await else { return };
        let (first, second) = (app.upload_ok(PHOTO).await, app.upload_ok(PHOTO).await);
        for id in [&first, &second] {
            let image = app.wait_terminal(id, Duration::from_secs(120)).await;
            assert_eq!(image.status, ImageStatus::Stored, "{:?}", image.error);
        }
        let checksum = sha256(&std::fs::read(testdata(PHOTO)).expect("photo"));
        let mut kept = keys_of(&second, &checksum);
        kept.sort();

        delete(&app, &first).await;
        assert_eq!(moto.keys().await, kept, "the original stays for the second image; the first one's assets go");
        delete(&app, &second).await;
        assert_eq!(moto.keys().await, Vec::<String>::new(), "the last delete removes the original");
        app.stop().await;
    }
}

both_backends! {
    async fn a_bucket_that_stops_answering_mid_run_fails_uploads_with_503_and_every_image_ends_stored(backend) {
        let Some(moto) = Moto::start("s3::a_bucket_that_stops_answering").await else { return };
        let scratch = tempfile::tempdir().expect("scratch");
        let overrides = Overrides {
            retry: Some(pictor::queue::retry::RetryPolicy { base_delay_ms: 200, max_delay_ms: 1000, jitter: 0.0 }),
            ..Overrides::default()
        };
        let configure = |c: &mut pictor::config::Config| {
            c.s3_timeout_secs = 1;
            c.s3_max_retries = 0;
            // The retry budget: 20 attempts, about 15 s of backoff.
            c.max_attempts = 20;
        };
        let Some(app) = s3_app(backend, &moto, scratch.path(), configure, overrides).await else { return };
        let files = ["mpl-grace-hopper.jpg", "sklearn-china.jpg", "skimage-coffee.png", "grey-grace-hopper.jpg"];
        let mut ids = Vec::new();
        for name in files {
            ids.push(app.upload_ok(name).await);
        }
        moto.freeze();
        let refused = app.upload_file(PHOTO).await;
        assert_eq!(refused.status(), 503, "an upload while the bucket is unreachable");
        assert!(refused.headers().contains_key("retry-after"));
        let body: serde_json::Value = refused.json().await.expect("json");
        assert_eq!(body["error"]["code"], "storage_unavailable");
        tokio::time::sleep(Duration::from_secs(3)).await;
        moto.thaw();

        for id in &ids {
            let image = app.wait_terminal(id, Duration::from_secs(120)).await;
            assert_eq!(image.status, ImageStatus::Stored, "{id}: {:?}", image.error);
        }
        let retried: Vec<(i64, Option<String>)> =
            sqlx::query("SELECT attempts, last_error FROM job WHERE attempts > 1")
                .fetch_all(&app.app.db.pool)
                .await
                .expect("jobs")
                .iter()
                .map(|row| (row.get("attempts"), row.get("last_error")))
                .collect();
        assert!(!retried.is_empty(), "some job met the frozen bucket and was retried");
        for (_, error) in &retried {
            let error = error.as_deref().unwrap_or_default();
            assert!(error.contains("object store"), "a readable last_error: {error}");
        }
        app.stop().await;
    }
}

/// Small photos, so that the test measures coordination, not decoding.
const PHOTOS: [&str; 4] = ["mpl-grace-hopper.jpg", "sklearn-china.jpg", "skimage-coffee.png", "grey-grace-hopper.jpg"];

#[tokio::test]
async fn an_api_and_two_workers_sharing_only_postgres_and_the_bucket_store_30_photos_with_one_worker_killed() {
    let Some(moto) = Moto::start("s3::an_api_and_two_workers_sharing_only_postgres_and_the_bucket").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let Some(database_url) = fresh_database(Backend::Postgres, dir.path()).await else { return };
    let db = pictor::db::Db::connect(&database_url).await.expect("connect");
    db.migrate().await.expect("migrate");
    let env: Vec<(&str, String)> = moto
        .env()
        .into_iter()
        .chain([("PICTOR_LOCK_TIMEOUT_SECS", "2".to_owned()), ("PICTOR_RUNNER_POLL_INTERVAL_MS", "500".to_owned())])
        .collect();
    // Each process in a folder of its own: no disk is shared.
    let homes: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().expect("home")).collect();
    let started = |home: &tempfile::TempDir, args: &[&str]| {
        let mut own = env.clone();
        own.push(("PICTOR_SCRATCH_DIR", home.path().join("scratch").display().to_string()));
        let own: Vec<(&str, &str)> = own.iter().map(|(k, v)| (*k, v.as_str())).collect();
        start(home.path(), &database_url, args, &own)
    };
    let mut api = started(&homes[0], &["serve", "--no-runner", "--bind", "127.0.0.1:0"]);
    let base = format!("http://{}", api.address());
    let mut workers: Vec<_> = homes[1..]
        .iter()
        .map(|home| {
            let mut worker = started(home, &["worker"]);
            worker.wait_for_log("job runner started", Duration::from_secs(60));
            worker
        })
        .collect();

    let client = reqwest::Client::new();
    let files: Vec<Vec<u8>> = PHOTOS.iter().map(|f| std::fs::read(testdata(f)).expect("photo")).collect();
    let mut ids = Vec::new();
    for i in 0..30 {
        ids.push(upload(client.clone(), base.clone(), format!("p{i}.jpg"), files[i % files.len()].clone()).await);
    }

    let count = |sql: String| {
        let pool = db.pool.clone();
        async move {
            let n: i64 = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_one(&pool).await.expect("query").get("n");
            n
        }
    };
    // Kill the first worker while it holds a job.
    kill_while_it_holds_a_job(workers.remove(0), &db.pool).await;

    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let stored = count("SELECT COUNT(*) AS n FROM image WHERE status = 'STORED'".into()).await;
        if stored == 30 {
            break;
        }
        assert_eq!(count("SELECT COUNT(*) AS n FROM image WHERE status = 'FAILED'".into()).await, 0, "no image fails");
        assert!(Instant::now() < deadline, "{stored} of 30 stored");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(count("SELECT COUNT(*) AS n FROM job".into()).await, 90, "three jobs per image, none duplicated");
    assert_eq!(count("SELECT COUNT(*) AS n FROM job WHERE status <> 'COMPLETED'".into()).await, 0);
    assert!(
        count("SELECT COUNT(*) AS n FROM job WHERE attempts = 2".into()).await >= 1,
        "the killed worker's job ran again"
    );

    let mut expected: Vec<String> = files.iter().map(|f| keys_of("x", &sha256(f))[0].clone()).collect();
    for id in &ids {
        expected.extend(keys_of(id, "0000")[1..].iter().cloned());
    }
    expected.sort();
    assert_eq!(moto.keys().await, expected, "one original per distinct photo, five assets per image, no temp object");
    for home in &homes {
        assert!(
            files_under(&home.path().join("storage"))
                .iter()
                .all(|f| !f.starts_with(home.path().join("storage/originals"))
                    && !f.starts_with(home.path().join("storage/assets"))),
            "no process kept an original or an asset on its own disk"
        );
    }
    assert!(files_under(&homes[2].path().join("scratch")).is_empty(), "the surviving worker's scratch copies are gone");
    for worker in workers {
        assert!(worker.stop(), "a worker exits cleanly on SIGTERM");
    }
    assert!(api.stop(), "the API exits cleanly on SIGTERM");
    db.pool.close().await;
    drop_database(&database_url).await;
}

both_backends! {
    async fn with_asset_redirect_assets_answer_with_a_presigned_or_public_url_that_fetches_them(backend) {
        let Some(moto) = Moto::start("s3::with_asset_redirect").await else { return };
        let scratch = tempfile::tempdir().expect("scratch");
        let presigned = |c: &mut pictor::config::Config| c.asset_redirect = Some(pictor::storage::AssetRedirect::Presigned);
        let Some(app) = s3_app(backend, &moto, scratch.path(), presigned, Overrides::default()).await else { return };
        let id = app.upload_ok(PHOTO).await;
        let image = app.wait_terminal(&id, Duration::from_secs(120)).await;
        assert_eq!(image.status, ImageStatus::Stored, "{:?}", image.error);
        let url = image.preview_path.clone().expect("preview");
        let stored = moto.store().get(&format!("{PREFIX}{url}").as_str().into()).await.expect("in the bucket");
        let stored = stored.bytes().await.expect("bytes");

        let direct = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        let response = direct.get(app.url(&url)).send().await.expect("asset");
        assert_eq!(response.status(), 302);
        let location = response.headers()["location"].to_str().expect("location").to_owned();
        assert!(location.starts_with(&moto.endpoint) && location.contains("X-Amz-Signature="), "{location}");
        let fetched = reqwest::get(&location).await.expect("presigned URL");
        assert_eq!(fetched.status(), 200);
        assert_eq!(fetched.bytes().await.expect("bytes"), stored, "the presigned URL fetches the asset");
        app.stop().await;

        // The public URL: the object's own, unsigned (moto, like a public bucket, serves it).
        let public = |c: &mut pictor::config::Config| c.asset_redirect = Some(pictor::storage::AssetRedirect::Public);
        let Some(app) = s3_app(backend, &moto, scratch.path(), public, Overrides::default()).await else { return };
        let response = direct.get(app.url(&url)).send().await.expect("asset");
        assert_eq!(response.status(), 302);
        let location = response.headers()["location"].to_str().expect("location").to_owned();
        assert_eq!(location, format!("{}/{BUCKET}/{PREFIX}{url}", moto.endpoint));
        moto.allow_public_reads().await;
        let fetched = reqwest::get(&location).await.expect("public URL");
        assert_eq!(fetched.status(), 200, "{location}");
        assert_eq!(fetched.bytes().await.expect("bytes"), stored, "the public URL fetches the asset");
        app.stop().await;

        let mut config = crate::helpers::test_config(scratch.path());
        config.asset_redirect = Some(pictor::storage::AssetRedirect::Public);
        let refused = config.validate().expect_err("a redirect without a bucket is refused");
        assert!(refused.to_string().contains("PICTOR_ASSET_REDIRECT"), "{refused}");
        moto.configure(&mut config);
        config.validate().expect("with a bucket it is valid");
    }
}

#[tokio::test]
async fn a_12_mib_upload_streams_into_a_multipart_upload_and_its_header_is_probed_from_the_bucket() {
    let Some(moto) = Moto::start("s3::a_12_mib_upload_streams_into_a_multipart_upload").await else { return };
    let scratch = tempfile::tempdir().expect("scratch");
    let Some(app) = s3_app(Backend::Sqlite, &moto, scratch.path(), |_| {}, Overrides::default()).await else {
        return;
    };
    // 200 comments of 60 kB before the frame: three 5 MiB parts and a
    // header that lies 12 MiB into the file, read from the bucket by ranges.
    let mut big = std::fs::read(testdata("bridge-klootwijk.jpg")).expect("photo");
    let padding = "p".repeat(60_000);
    for _ in 0..200 {
        big = crate::helpers::with_jpeg_comment(&big, &padding);
    }
    assert!(big.len() > 12 * 1024 * 1024);
    let response = app.upload_bytes("big.jpg", big.clone(), None, None).await;
    let status = response.status();
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(status, 201, "{body}");
    let id = body["imageId"].as_str().expect("id").to_owned();
    let image = app.wait_terminal(&id, Duration::from_secs(120)).await;
    assert_eq!(image.status, ImageStatus::Stored, "{:?}", image.error);
    let edges = (image.width.min(image.height), image.width.max(image.height));
    assert_eq!(edges, (2448, 4352), "the header probed through the bucket");
    let mut expected = keys_of(&id, &sha256(&big));
    expected.sort();
    assert_eq!(moto.keys().await, expected);
    let original = moto.store().get(&format!("{PREFIX}/{}", expected.last().expect("original")).as_str().into()).await;
    assert_eq!(sha256(&original.expect("original").bytes().await.expect("bytes")), sha256(&big), "stored whole");
    app.stop().await;
}

/// `pictor doctor` under `STORAGE_URL` checks the bucket (written, read and
/// removed), not the unused `STORAGE_DIR`, and fails with a fix naming the
/// S3 settings when the bucket is missing.
#[tokio::test]
async fn doctor_checks_the_bucket_under_storage_url() {
    let Some(moto) = Moto::start("s3::doctor_checks_the_bucket_under_storage_url").await else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = format!("sqlite://{}", dir.path().join("pictor.db").display());
    let doctor = |storage_url: String| {
        let mut cmd = crate::processes::command(dir.path());
        cmd.args(["doctor", "--json", "--database-url", &database_url]).envs(moto.env());
        // STORAGE_DIR points at a file: were it checked, the check would fail.
        let not_a_folder = dir.path().join("not-a-folder");
        std::fs::write(&not_a_folder, "x").expect("file");
        let output = cmd.env("STORAGE_URL", storage_url).env("STORAGE_DIR", &not_a_folder).output().expect("doctor");
        let checks: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("doctor --json: {e}: {}", String::from_utf8_lossy(&output.stderr)));
        let storage = checks.into_iter().find(|c| c["check"] == "storage").expect("a storage check");
        (output.status.code(), storage)
    };

    let (code, storage) = doctor(format!("s3://{BUCKET}/{PREFIX}"));
    assert_eq!(storage["result"], "ok", "{storage}");
    assert_eq!(storage["detail"], format!("s3://{BUCKET}/{PREFIX} is writable"));
    assert_ne!(code, Some(1), "nothing failed: {storage}");

    let (code, storage) = doctor("s3://no-such-bucket/site".to_owned());
    assert_eq!(code, Some(1), "{storage}");
    assert_eq!(storage["result"], "fail", "{storage}");
    assert!(storage["detail"].as_str().is_some_and(|d| d.contains("no-such-bucket")), "{storage}");
    assert!(storage["fix"].as_str().is_some_and(|f| f.contains("STORAGE_URL")), "{storage}");
}
