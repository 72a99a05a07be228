//! End-to-end tests in headless Chromium, driven through chromedriver's
//! WebDriver HTTP protocol with the reqwest client the tests already have (a
//! handful of commands; no WebDriver crate to build). Screenshots of every page
//! go to `target/screenshots/`. Without Chromium they skip, except on CI.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, testdata};

const CHROMIUM: &str = "/usr/bin/chromium";
/// WebDriver's key for an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
/// Longest wait for something to show on a page.
const PAGE_TIMEOUT: Duration = Duration::from_secs(60);

/// Chromium's tests share the machine's CPUs with the rest: one browser at a time.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Where screenshots are saved.
fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    dir.canonicalize().unwrap_or(dir)
}

/// chromedriver's path, or `None` (with a notice) when Chromium is missing
/// off CI; on CI a missing Chromium fails the test.
fn chromedriver() -> Option<PathBuf> {
    let driver = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|p| p.join("chromedriver")).find(|p| p.is_file()));
    match driver {
        Some(driver) if std::path::Path::new(CHROMIUM).is_file() => Some(driver),
        _ => {
            crate::skip::skip(
                "browser tests",
                &format!("{CHROMIUM} or chromedriver missing (apt-get install chromium chromium-driver)"),
            );
            None
        }
    }
}

/// A chromedriver process and one headless Chromium session.
struct Browser {
    driver: Child,
    http: reqwest::Client,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start(driver_path: &PathBuf) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
        let driver = Command::new(driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not answer");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().expect("profile dir");
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-sync".to_owned(),
            "--window-size=1280,1000".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        }}});
        let answer: Value =
            http.post(format!("{base}/session")).json(&caps).send().await.expect("session").json().await.expect("json");
        let id = answer["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {answer}"));
        Self { driver, http, session: format!("{base}/session/{id}"), _profile: profile }
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let request = self.http.request(method, format!("{}{path}", self.session));
        let request = if body.is_null() { request } else { request.json(&body) };
        let answer: Value = request.send().await.expect("webdriver").json().await.expect("webdriver json");
        if answer["value"].get("error").is_some() {
            panic!("WebDriver {path}: {}", answer["value"]);
        }
        answer["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", json!({"url": url})).await;
    }

    async fn find(&self, css: &str) -> String {
        let found =
            self.command(reqwest::Method::POST, "/element", json!({"using": "css selector", "value": css})).await;
        found[ELEMENT_KEY].as_str().expect("element id").to_owned()
    }

    async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.command(reqwest::Method::POST, &format!("/element/{element}/click"), json!({})).await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.command(reqwest::Method::POST, &format!("/element/{element}/clear"), json!({})).await;
        self.command(reqwest::Method::POST, &format!("/element/{element}/value"), json!({"text": text})).await;
    }

    /// Runs `script` (a function body; `arguments` are `args`) and returns its value.
    async fn eval(&self, script: &str, args: Value) -> Value {
        self.command(reqwest::Method::POST, "/execute/sync", json!({"script": script, "args": args})).await
    }

    /// Waits until `script` returns true; returns the last value of `report` on timeout.
    async fn wait_for(&self, what: &str, script: &str, report: &str) {
        let deadline = Instant::now() + PAGE_TIMEOUT;
        loop {
            if self.eval(script, json!([])).await == json!(true) {
                return;
            }
            if Instant::now() > deadline {
                let state = self.eval(report, json!([])).await;
                self.screenshot(&format!("timeout-{}", what.replace(' ', "-"))).await;
                panic!("timed out waiting for {what}; page says: {state}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn resize(&self, width: u32, height: u32) {
        self.command(reqwest::Method::POST, "/window/rect", json!({"width": width, "height": height})).await;
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        let data = self.command(reqwest::Method::GET, "/screenshot", Value::Null).await;
        let png = base64::engine::general_purpose::STANDARD.decode(data.as_str().expect("base64")).expect("png");
        let path = screenshot_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        eprintln!("screenshot: {}", path.display());
        path
    }

    async fn quit(mut self) {
        let _ = self.http.delete(&self.session).send().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}

/// Uploads files through the upload page and returns when each upload's
/// progress element ended (`STORED` or `FAILED`).
async fn upload_through_the_page(browser: &Browser, app: &TestApp, files: &[&str], collection: &str) {
    browser.goto(&app.url("/upload")).await;
    let paths: Vec<String> =
        files.iter().map(|f| testdata(f).canonicalize().expect("test image").display().to_string()).collect();
    browser.type_into("#collection", collection).await;
    let input = browser.find("#file").await;
    browser.command(reqwest::Method::POST, &format!("/element/{input}/value"), json!({"text": paths.join("\n")})).await;
    browser.click("#upload-button").await;
    let n = files.len();
    browser
        .wait_for(
            "uploads to finish",
            &format!("return document.querySelectorAll('.upload-item.stored, .upload-item.failed').length === {n};"),
            "return document.getElementById('uploads').innerText;",
        )
        .await;
}

#[tokio::test]
async fn two_photos_uploaded_through_the_page_reach_stored_show_in_the_gallery_and_can_be_renamed() {
    let Some(driver) = chromedriver() else { return };
    let _one = ONE_BROWSER.lock().await;
    let app = spawn_app().await;
    let browser = Browser::start(&driver).await;

    // Upload: both progress bars reach "Stored".
    upload_through_the_page(&browser, &app, &["mpl-grace-hopper.jpg", "mate-yellowflower.jpg"], "browser").await;
    let states = browser
        .eval("return Array.from(document.querySelectorAll('pictor-upload-progress')).map(e => e.dataset.status + ' ' + e.querySelector('.stage-status').textContent);", json!([]))
        .await;
    assert_eq!(states, json!(["STORED Stored", "STORED Stored"]), "{states}");
    browser.screenshot("upload").await;

    // Gallery: both thumbnails load, over their painted ThumbHashes (at most 32 px).
    browser.goto(&app.url("/")).await;
    browser
        .wait_for(
            "two thumbnails to load",
            "const imgs = Array.from(document.querySelectorAll('#gallery img:not(.backdrop)')); \
             return imgs.length === 2 && imgs.every(i => i.complete && i.naturalWidth > 0);",
            "return Array.from(document.querySelectorAll('#gallery img')).map(i => [i.className, i.naturalWidth]);",
        )
        .await;
    browser
        .wait_for(
            "two ThumbHash placeholders to paint",
            "const imgs = Array.from(document.querySelectorAll('#gallery img.backdrop')); \
             return imgs.length === 2 && imgs.every(i => i.complete && i.naturalWidth > 0 && i.naturalWidth <= 32);",
            "return Array.from(document.querySelectorAll('#gallery img.backdrop')).map(i => i.naturalWidth);",
        )
        .await;
    browser
        .wait_for(
            "the stored cards' badges to be hidden",
            "const badges = Array.from(document.querySelectorAll('#gallery .badge')); \
             return badges.length === 2 && badges.every(b => getComputedStyle(b).display === 'none');",
            "return Array.from(document.querySelectorAll('#gallery .badge')).map(b => getComputedStyle(b).display);",
        )
        .await;
    browser.screenshot("gallery").await;
    browser.resize(390, 844).await;
    browser.screenshot("gallery-phone").await;
    browser.resize(1280, 1000).await;

    // Image page: rename, then see the new title in the gallery.
    let href = browser.eval("return document.querySelector('#gallery a').getAttribute('href');", json!([])).await;
    browser.goto(&app.url(href.as_str().expect("card link"))).await;
    browser
        .wait_for(
            "the preview",
            "const i = document.querySelector('.preview img'); return !!i && i.complete && i.naturalWidth > 0;",
            "return document.body.innerText;",
        )
        .await;
    browser.type_into("#edit-title", "Renamed in Chromium").await;
    browser.click("#edit-form button[type=submit]").await;
    browser
        .wait_for(
            "the save",
            "return document.getElementById('edit-message').textContent === 'Saved.';",
            "return document.getElementById('edit-message').textContent;",
        )
        .await;
    browser.screenshot("image").await;
    browser.goto(&app.url("/")).await;
    let titles = browser
        .eval("return Array.from(document.querySelectorAll('.card-title')).map(t => t.textContent);", json!([]))
        .await;
    assert!(titles.as_array().expect("titles").contains(&json!("Renamed in Chromium")), "{titles}");

    browser.quit().await;
    app.stop().await;
}

#[tokio::test]
async fn a_failed_job_is_retried_from_the_admin_page_and_its_state_changes() {
    let Some(driver) = chromedriver() else { return };
    let _one = ONE_BROWSER.lock().await;
    let app = spawn_app().await;
    let browser = Browser::start(&driver).await;

    // A truncated photo passes the header check and fails in processing.
    upload_through_the_page(&browser, &app, &["bad-truncated-bridge.jpg"], "").await;
    let text = browser.eval("return document.getElementById('uploads').innerText;", json!([])).await;
    assert!(text.as_str().expect("text").contains("could not process"), "{text}");
    browser.screenshot("upload-failed").await;

    let failed = app.jobs("status=FAILED").await.jobs;
    let job = failed.first().expect("a failed job").clone();
    browser.goto(&app.url("/admin/jobs")).await;
    browser
        .wait_for("the job table", "return !!document.querySelector('#jobs');", "return document.body.innerText;")
        .await;
    browser.screenshot("admin-jobs").await;

    browser.goto(&app.url(&format!("/admin/jobs/{}", job.id))).await;
    browser.screenshot("admin-job").await;
    // Record every status the badge shows from here on.
    browser
        .eval(
            "const b = document.querySelector('#job [data-field=status]'); window.seen = [b.textContent]; \
             new MutationObserver(() => window.seen.push(b.textContent)).observe(b, {childList: true, characterData: true, subtree: true});",
            json!([]),
        )
        .await;
    browser.click("#retry-button").await;
    browser
        .wait_for(
            "the retry",
            "return /retried/.test(document.getElementById('admin-message').textContent) && window.seen.some(s => s !== 'FAILED');",
            "return [document.getElementById('admin-message').textContent, window.seen];",
        )
        .await;
    let seen = browser.eval("return window.seen;", json!([])).await;
    assert_eq!(seen[0], json!("FAILED"), "{seen}");
    browser.screenshot("admin-job-retried").await;
    let after = app.job(job.id).await;
    assert!(after.updated_at >= job.updated_at);
    assert_ne!(
        (after.status, after.attempts, after.updated_at.clone()),
        (job.status, job.attempts, job.updated_at.clone())
    );

    browser.quit().await;
    app.stop().await;
}

/// With `PICTOR_ADMIN_TOKEN` set, the admin page sends the browser to the
/// login page; typing the token there opens a session in which Retry works.
#[tokio::test]
async fn with_a_token_set_the_admin_logs_in_through_the_page_and_retries_a_failed_job() {
    let Some(driver) = chromedriver() else { return };
    let _one = ONE_BROWSER.lock().await;
    let token = "browser-admin-token";
    let app = crate::helpers::spawn_app_with(
        |c| c.admin_token = Some(pictor::config::Secret::new(token)),
        pictor::app::Overrides::default(),
        true,
    )
    .await;
    let uploaded = app.upload_file_with_token("bad-truncated-bridge.jpg", token).await;
    assert_eq!(uploaded.status(), 201);
    let deadline = Instant::now() + PAGE_TIMEOUT;
    let job = loop {
        let failed: Value = app
            .client
            .get(app.url("/api/admin/jobs?status=FAILED"))
            .bearer_auth(token)
            .send()
            .await
            .expect("jobs")
            .json()
            .await
            .expect("json");
        if let Some(id) = failed["jobs"][0]["id"].as_i64() {
            break id;
        }
        assert!(Instant::now() < deadline, "the truncated photo's job never failed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let job_detail = || async {
        let answer = app.client.get(app.url(&format!("/api/admin/jobs/{job}"))).bearer_auth(token).send().await;
        answer.expect("job").json::<Value>().await.expect("json")
    };
    let before = job_detail().await;
    let browser = Browser::start(&driver).await;

    browser.goto(&app.url(&format!("/admin/jobs/{job}"))).await;
    browser
        .wait_for(
            "the login form",
            "return !!document.querySelector('#login-form');",
            "return document.body.innerText;",
        )
        .await;
    browser.type_into("#token", "a-wrong-token").await;
    browser.click("#login-button").await;
    browser
        .wait_for("the refusal", "return !!document.querySelector('#login-error');", "return document.body.innerText;")
        .await;
    browser.type_into("#token", token).await;
    browser.click("#login-button").await;
    browser
        .wait_for(
            "the job page",
            "return !!document.querySelector('#retry-button');",
            "return document.body.innerText;",
        )
        .await;
    browser.screenshot("admin-job-after-login").await;
    let cookie_visible = browser.eval("return document.cookie;", json!([])).await;
    assert_eq!(cookie_visible, json!(""), "the session cookie is HttpOnly");
    browser.click("#retry-button").await;
    browser
        .wait_for(
            "the retry",
            "return /retried/.test(document.getElementById('admin-message').textContent);",
            "return document.getElementById('admin-message').textContent;",
        )
        .await;
    let after = job_detail().await;
    assert_eq!(before["status"], "FAILED");
    assert_ne!(after["updatedAt"], before["updatedAt"], "the retry changed the job: {before} → {after}");

    browser.click("#logout-button").await;
    // The logout's answer sends the browser to the gallery: wait for it, or
    // the next navigation can race the cookie's removal.
    browser
        .wait_for(
            "the gallery after logout",
            "return location.pathname === '/' && !!document.querySelector('form.filters');",
            "return location.href;",
        )
        .await;
    browser.goto(&app.url("/admin/jobs")).await;
    browser
        .wait_for(
            "the login form again",
            "return !!document.querySelector('#login-form');",
            "return document.body.innerText;",
        )
        .await;

    browser.quit().await;
    app.stop().await;
}
