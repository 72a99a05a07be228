//! End-to-end tests in headless Chromium, driven through chromedriver's
//! WebDriver HTTP protocol with the reqwest client the tests already have (a
//! handful of commands; no WebDriver crate to build). Screenshots of every page
//! go to `target/screenshots/`. Without Chromium they skip, except on CI.
//!
//! Every page a test visits must leave the browser's console free of errors:
//! a CSP violation, an uncaught exception, a failed load (a 404 icon) or a
//! `console.error` fails the test (the console is read before each
//! navigation and at the end), unless the test said it expects that one.

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
    /// Parts of console errors the test expects (each allows one error).
    expected_errors: std::sync::Mutex<Vec<String>>,
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
            // Keep the console (errors, CSP violations, failed loads) for `console_errors`.
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let answer: Value =
            http.post(format!("{base}/session")).json(&caps).send().await.expect("session").json().await.expect("json");
        let id = answer["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {answer}"));
        Self {
            driver,
            http,
            session: format!("{base}/session/{id}"),
            _profile: profile,
            expected_errors: std::sync::Mutex::default(),
        }
    }

    /// The console's error-level entries since the last look (Chromium
    /// reports CSP violations, uncaught exceptions and failed loads there).
    async fn console_errors(&self) -> Vec<String> {
        let entries = self.command(reqwest::Method::POST, "/se/log", json!({"type": "browser"})).await;
        let entries = entries.as_array().cloned().unwrap_or_default();
        entries
            .iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or("").to_owned())
            .collect()
    }

    /// Lets one console error containing `part` pass (a 401 the test provokes).
    fn expect_console_error(&self, part: &str) {
        self.expected_errors.lock().expect("expected errors").push(part.to_owned());
    }

    /// `errors` less those the test expected (each expectation used once).
    fn unexpected(&self, errors: Vec<String>) -> Vec<String> {
        let mut expected = self.expected_errors.lock().expect("expected errors");
        errors
            .into_iter()
            .filter(|error| match expected.iter().position(|part| error.contains(part.as_str())) {
                Some(i) => {
                    expected.remove(i);
                    false
                }
                None => true,
            })
            .collect()
    }

    /// Fails the test on any console error since the last look that it did not expect.
    async fn assert_quiet_console(&self) {
        let errors = self.console_errors().await;
        let unexpected = self.unexpected(errors);
        if !unexpected.is_empty() {
            let url = self.command(reqwest::Method::GET, "/url", Value::Null).await;
            panic!("the browser's console has errors on {url}: {unexpected:#?}");
        }
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

    /// Leaves the current page (whose console must be free of errors) for `url`.
    async fn goto(&self, url: &str) {
        self.assert_quiet_console().await;
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

    /// Ends the session, after checking the last page's console (and that
    /// every error the test expected did show).
    async fn quit(mut self) {
        self.assert_quiet_console().await;
        let missing = self.expected_errors.lock().expect("expected errors").clone();
        assert!(missing.is_empty(), "expected console errors that never showed: {missing:?}");
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
    // Record every status the badge shows from here on, with which of
    // Retry and Cancel show beside it, and the "Updated" time.
    browser
        .eval(
            "const b = document.querySelector('#job [data-field=status]'); \
             const shown = () => [b.textContent, !document.getElementById('retry-button').hidden, \
                                  !document.getElementById('cancel-button').hidden]; \
             window.seen = [shown()]; \
             window.updatedBefore = document.querySelector('#job [data-field=updated]').textContent; \
             new MutationObserver(() => window.seen.push(shown())).observe(document.getElementById('job'), \
                 {childList: true, characterData: true, subtree: true, attributes: true, attributeFilter: ['hidden']});",
            json!([]),
        )
        .await;
    browser.click("#retry-button").await;
    browser
        .wait_for(
            "the retry",
            "return /retried/.test(document.getElementById('admin-message').textContent) && window.seen.some(s => s[0] !== 'FAILED') \
                 && document.querySelector('#job [data-field=updated]').textContent !== window.updatedBefore;",
            "return [document.getElementById('admin-message').textContent, window.seen];",
        )
        .await;
    let seen = browser.eval("return window.seen;", json!([])).await;
    assert_eq!(seen[0], json!(["FAILED", true, true]), "a failed job offers Retry and Cancel: {seen}");
    // Without a reload, the buttons follow the state: Retry for FAILED and
    // CANCELLED, Cancel for PENDING and FAILED, neither while RUNNING.
    for state in seen.as_array().expect("states") {
        let status = state[0].as_str().expect("status");
        let expected =
            json!([status, matches!(status, "FAILED" | "CANCELLED"), matches!(status, "PENDING" | "FAILED")]);
        assert_eq!(state, &expected, "{seen}");
    }
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
    // The refusal is a 401 page, which Chromium's console reports.
    browser.expect_console_error("401");
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

/// Waits until the gallery's card for `id` satisfies `condition` (a JS
/// expression over `card`).
async fn wait_for_card(browser: &Browser, what: &str, id: &str, condition: &str) {
    let card = format!("document.querySelector('#gallery [data-image-id=\"{id}\"]')");
    browser
        .wait_for(
            what,
            &format!("const card = {card}; return !!card && ({condition});"),
            &format!("const card = {card}; return card ? card.outerHTML.slice(0, 600) : document.body.innerText;"),
        )
        .await;
}

/// With a token set and reading open (`PICTOR_PUBLIC_READ`), the gallery's
/// event stream carries image events only; the gallery still follows
/// uploads from the first event to the thumbnail, and deletions.
#[tokio::test]
async fn the_open_gallery_shows_an_upload_arrive_turn_stored_and_disappear_when_deleted_without_a_reload() {
    let Some(driver) = chromedriver() else { return };
    let _one = ONE_BROWSER.lock().await;
    let token = "live-gallery-token";
    // No runner yet: the upload stays INGESTED until the test starts a worker.
    let app = crate::helpers::spawn_app_with(
        |c| {
            c.admin_token = Some(pictor::config::Secret::new(token));
            c.public_read = true;
        },
        pictor::app::Overrides::default(),
        false,
    )
    .await;
    let browser = Browser::start(&driver).await;
    browser.goto(&app.url("/")).await;
    browser
        .wait_for(
            "the empty gallery",
            "return !!document.getElementById('gallery-empty');",
            "return document.body.innerText;",
        )
        .await;
    // Record what the grid gains, in order, and every status each card
    // shows; a reload would lose `window.recorded`.
    browser
        .eval(
            "window.recorded = []; window.statuses = {}; \
             const grid = document.getElementById('gallery'); \
             const note = (node) => { \
               if (node.nodeType !== 1) return; \
               if (node.matches('li.card')) window.recorded.push('card'); \
               for (const img of node.matches('img') ? [node] : node.querySelectorAll('img')) \
                 window.recorded.push(img.classList.contains('backdrop') ? 'thumbhash' : 'thumbnail:' + (img.complete && img.naturalWidth > 0)); \
             }; \
             new MutationObserver((changes) => { \
               for (const c of changes) { \
                 c.addedNodes.forEach(note); \
                 const card = c.target.closest && c.target.closest('li.card'); \
                 if (card) (window.statuses[card.dataset.imageId] ||= []).push(card.dataset.status + ' ' + card.querySelector('.badge').textContent + (card.querySelector('.badge').hidden ? ' hidden' : '')); \
               } \
             }).observe(grid, {childList: true, subtree: true, attributes: true, attributeFilter: ['data-status', 'hidden']});",
            json!([]),
        )
        .await;

    // An upload over HTTP appears at once, as the page renders an unprocessed image.
    let uploaded = app.upload_file_with_token("mpl-grace-hopper.jpg", token).await;
    assert_eq!(uploaded.status(), 201);
    let id = uploaded.json::<Value>().await.expect("json")["imageId"].as_str().expect("id").to_owned();
    wait_for_card(
        &browser,
        "the new card",
        &id,
        "card.dataset.status === 'INGESTED' && card.querySelector('.badge').textContent === 'Ingested' \
         && !card.querySelector('.badge').hidden && card.querySelector('.placeholder').textContent === 'Ingested…'",
    )
    .await;
    let shown = browser
        .eval(
            "return [document.getElementById('gallery').hidden, !!document.getElementById('gallery-empty'), \
             document.getElementById('gallery-total').textContent, document.querySelector('#gallery .card-title').textContent];",
            json!([]),
        )
        .await;
    assert_eq!(shown, json!([false, false, "(1 image)", "mpl-grace-hopper"]));
    browser.screenshot("gallery-live-arrival").await;

    // A worker processes it: the badge moves on, the ThumbHash paints, and
    // the thumbnail replaces the placeholder once it has loaded.
    let (stop_worker, stopping) = pictor::shutdown::channel();
    let worker = tokio::spawn(pictor::app::work(app.app.clone(), None, stopping));
    wait_for_card(
        &browser,
        "the stored card",
        &id,
        "card.dataset.status === 'STORED' && card.querySelector('.badge').hidden && !card.querySelector('.placeholder') \
         && Array.from(card.querySelectorAll('img')).every(i => i.complete && i.naturalWidth > 0)",
    )
    .await;
    browser.screenshot("gallery-live-stored").await;
    let recorded = browser.eval("return window.recorded;", json!([])).await;
    assert_eq!(recorded, json!(["card", "thumbhash", "thumbnail:true"]), "painted in order, without a reload");
    let sizes = browser
        .eval(
            "const card = document.querySelector('#gallery .card'); \
             return [card.querySelector('img.backdrop').naturalWidth, card.querySelector('img.backdrop').naturalHeight, \
                     card.querySelector('img:not(.backdrop)').getAttribute('width'), card.querySelector('img:not(.backdrop)').getAttribute('height')];",
            json!([]),
        )
        .await;
    // The 512 × 600 portrait: a ThumbHash 32 px high, a thumbnail laid out at 218 × 256.
    assert_eq!(sizes, json!([27, 32, "218", "256"]), "{sizes}");
    let statuses = browser.eval("return window.statuses;", json!([])).await;
    let statuses: Vec<&str> = statuses[&id].as_array().expect("statuses").iter().filter_map(Value::as_str).collect();
    assert_eq!(statuses.last(), Some(&"STORED Stored hidden"), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| s.starts_with("INGESTED") || s.starts_with("PROCESSING") || s.starts_with("STORED")),
        "{statuses:?}"
    );

    // A second upload goes on top; deleting the first over the API takes its card away.
    let second = app.upload_file_with_token("skimage-chelsea.png", token).await;
    let second = second.json::<Value>().await.expect("json")["imageId"].as_str().expect("id").to_owned();
    wait_for_card(
        &browser,
        "the second card",
        &second,
        "card.dataset.status === 'STORED' && !card.querySelector('.placeholder')",
    )
    .await;
    let order = browser
        .eval("return Array.from(document.querySelectorAll('#gallery .card')).map(c => c.dataset.imageId);", json!([]))
        .await;
    assert_eq!(order, json!([second.clone(), id.clone()]), "newest first");
    let deleted =
        app.client.delete(app.url(&format!("/api/images/{id}"))).bearer_auth(token).send().await.expect("delete");
    assert_eq!(deleted.status(), 204);
    browser
        .wait_for(
            "the deleted card to go",
            &format!("return !document.querySelector('#gallery [data-image-id=\"{id}\"]') && document.getElementById('gallery-total').textContent === '(1 image)';"),
            "return document.getElementById('gallery').innerHTML.slice(0, 600);",
        )
        .await;
    assert_eq!(browser.eval("return window.recorded.length;", json!([])).await, json!(6), "still the same page");

    // Through the UI: log in, open the other image, delete it; the gallery is empty.
    browser.goto(&app.url(&format!("/admin/login?next=/images/{second}"))).await;
    browser.type_into("#token", token).await;
    browser.click("#login-button").await;
    browser
        .wait_for(
            "the image page",
            "return !!document.getElementById('delete-button');",
            "return document.body.innerText;",
        )
        .await;
    browser.click("#delete-button").await;
    browser.click("#delete-confirm").await;
    browser
        .wait_for(
            "the gallery, empty again",
            "return location.pathname === '/' && !!document.getElementById('gallery-empty') && !document.querySelector('#gallery .card');",
            "return [location.href, document.body.innerText];",
        )
        .await;
    assert_eq!(app.client.get(app.url(&format!("/api/images/{second}"))).send().await.expect("get").status(), 404);

    // The console check itself: a CSP violation is seen (and taken off the log).
    browser
        .eval(
            "const s = document.createElement('script'); s.textContent = 'window.ran = 1'; document.body.append(s);",
            json!([]),
        )
        .await;
    let deadline = Instant::now() + PAGE_TIMEOUT;
    let errors = loop {
        let errors = browser.console_errors().await;
        if !errors.is_empty() || Instant::now() > deadline {
            break errors;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(errors.iter().any(|e| e.contains("Content Security Policy")), "{errors:?}");
    assert_eq!(browser.eval("return window.ran === undefined;", json!([])).await, json!(true));

    browser.quit().await;
    stop_worker.trigger();
    worker.await.expect("worker task").expect("worker");
    app.stop().await;
}
