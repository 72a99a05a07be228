//! The web UI over HTTP: pages render with a Content-Security-Policy, static
//! files are served, foreign-origin mutations are refused, and the JS
//! client's unit tests pass under `node --test`.

use std::path::Path;
use std::time::Duration;

use crate::helpers::spawn_app;

#[tokio::test]
async fn every_page_renders_with_a_content_security_policy_without_inline_scripts() {
    // Arrange
    let app = spawn_app().await;
    let id = app.upload_ok("mpl-grace-hopper.jpg").await;
    app.wait_terminal(&id, Duration::from_secs(60)).await;
    let job_id = app.jobs(&format!("imageId={id}")).await.jobs[0].id;

    for path in ["/", "/upload", &format!("/images/{id}"), "/admin/jobs", &format!("/admin/jobs/{job_id}")] {
        // Act
        let response = app.client.get(app.url(path)).send().await.expect("page");

        // Assert
        assert_eq!(response.status(), 200, "{path}");
        let csp = response.headers()["content-security-policy"].to_str().expect("csp").to_owned();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{path}: {csp}");
        let html = response.text().await.expect("html");
        assert!(html.starts_with("<!doctype html>"), "{path}");
        assert!(!html.contains("<script>"), "{path} has an inline script");
        assert!(html.contains(r#"<link rel="icon" href="/static/favicon.svg""#), "{path} names its icon");
        if path.starts_with("/admin/jobs/") {
            // A completed job: both buttons are there for admin.js, hidden, with the states they show in.
            assert!(html.contains(r#"data-shown-when="FAILED CANCELLED" id="retry-button" hidden>"#), "{html}");
            assert!(html.contains(r#"data-shown-when="PENDING FAILED" id="cancel-button" hidden>"#), "{html}");
        }
    }
    // The icon the pages name is served (no 404 in the browser's console).
    let icon = app.client.get(app.url("/static/favicon.svg")).send().await.expect("icon");
    assert_eq!(icon.status(), 200);
    assert_eq!(icon.headers()["content-type"], "image/svg+xml");
    assert!(icon.text().await.expect("svg").starts_with("<svg"));
    app.stop().await;
}

#[tokio::test]
async fn the_gallery_shows_thumbnails_with_a_srcset_and_filters_by_collection() {
    // Arrange
    let app = spawn_app().await;
    let bytes = std::fs::read(crate::helpers::testdata("mpl-grace-hopper.jpg")).expect("image");
    let response = app.upload_bytes("hopper.jpg", bytes, Some("Grace <Hopper>"), Some("people")).await;
    let id = response.json::<serde_json::Value>().await.expect("json")["imageId"].as_str().expect("id").to_owned();
    app.wait_terminal(&id, Duration::from_secs(60)).await;

    // Act
    let all = app.client.get(app.url("/")).send().await.expect("gallery").text().await.expect("html");
    let other =
        app.client.get(app.url("/?collection=animals")).send().await.expect("gallery").text().await.expect("html");

    // Assert
    assert!(all.contains(&format!("data-image-id=\"{id}\"")));
    assert!(all.contains("<img class=\"backdrop\" src=\"data:image/png;base64,"), "the ThumbHash is painted");
    let srcset = all.split("srcset=\"").nth(1).and_then(|rest| rest.split('"').next()).expect("a srcset");
    assert_eq!(srcset.split(", ").filter(|e| e.ends_with('w')).count(), 4, "srcset with the four sizes: {srcset}");
    assert!(all.contains("Grace &#60;Hopper&#62;") || all.contains("Grace &lt;Hopper&gt;"), "titles are escaped");
    assert!(other.contains("No image matches these filters."));
    app.stop().await;
}

#[tokio::test]
async fn an_empty_gallery_points_to_the_upload_page() {
    let app = spawn_app().await;
    let html = app.client.get(app.url("/")).send().await.expect("gallery").text().await.expect("html");
    assert!(html.contains("No images yet.") && html.contains("href=\"/upload\""));
    app.stop().await;
}

/// The attributes of the grid element, as `name="value"` pairs.
fn grid_attributes(html: &str) -> String {
    let start = html.find("<ul class=\"grid\" id=\"gallery\"").expect("the grid is always there");
    html[start..].split('>').next().expect("its tag").to_owned()
}

#[tokio::test]
async fn the_gallery_tells_its_script_which_live_arrivals_belong_on_it() {
    // Arrange: no runner, so the image stays INGESTED.
    let app = crate::helpers::spawn_app_with(|_| {}, pictor::app::Overrides::default(), false).await;
    let empty = app.client.get(app.url("/?collection=a+b")).send().await.expect("gallery").text().await.expect("html");
    let id = app.upload_ok("mpl-grace-hopper.jpg").await;
    let uploaded_at = app.image(&id).await.uploaded_at;

    // Act
    let first = app.client.get(app.url("/?status=INGESTED")).send().await.expect("gallery").text().await.expect("html");
    let second = app.client.get(app.url("/?page=2")).send().await.expect("gallery").text().await.expect("html");

    // Assert: the first page takes arrivals newer than its newest card, by its filters.
    let empty = grid_attributes(&empty);
    assert!(empty.contains("data-first-page=\"true\"") && empty.contains("data-filter-collection=\"a b\""), "{empty}");
    assert!(empty.contains("data-newest=\"\"") && empty.ends_with(" hidden"), "an empty grid waits, hidden: {empty}");
    let first = grid_attributes(&first);
    assert!(first.contains("data-first-page=\"true\"") && first.contains("data-filter-status=\"INGESTED\""), "{first}");
    assert!(first.contains(&format!("data-newest=\"{uploaded_at}\"")) && !first.contains("hidden"), "{first}");
    assert!(grid_attributes(&second).contains("data-first-page=\"false\""));
    app.stop().await;
}

#[tokio::test]
async fn unknown_images_and_jobs_get_a_not_found_page() {
    let app = spawn_app().await;
    for path in ["/images/nope", "/admin/jobs/999999", "/admin/jobs/x"] {
        let response = app.client.get(app.url(path)).send().await.expect("page");
        assert_eq!(response.status(), 404, "{path}");
        assert!(response.text().await.expect("html").contains("Not found"));
    }
    app.stop().await;
}

#[tokio::test]
async fn the_js_client_is_served_as_a_module_at_a_stable_path() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/static/pictor-client.js")).send().await.expect("js");
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().expect("type").starts_with("text/javascript"));
    let etag = response.headers()["etag"].clone();
    let body = response.text().await.expect("body");
    for name in ["getImages", "getAssetUrl", "getThumbnailUrl", "getPreviewUrl", "isImageReady", "pollImageStatus"] {
        assert!(body.contains(&format!("export function {name}(")), "{name}");
    }
    let again = app.client.get(app.url("/static/pictor-client.js")).header("if-none-match", etag).send().await;
    assert_eq!(again.expect("revalidate").status(), 304);
    assert_eq!(app.client.get(app.url("/static/nope.js")).send().await.expect("404").status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn a_mutation_from_a_foreign_origin_is_refused_and_a_same_origin_one_passes() {
    // Arrange
    let app = spawn_app().await;
    let id = app.upload_ok("mpl-grace-hopper.jpg").await;
    let url = app.url(&format!("/api/images/{id}"));
    let host = app.base.trim_start_matches("http://").to_owned();

    // Act
    let foreign =
        app.client.patch(&url).header("origin", "https://evil.example").json(&serde_json::json!({"title": "x"}));
    let foreign = foreign.send().await.expect("patch");
    let cross_site = app.client.delete(&url).header("sec-fetch-site", "cross-site").send().await.expect("delete");
    let same =
        app.client.patch(&url).header("origin", format!("http://{host}")).json(&serde_json::json!({"title": "ok"}));
    let same = same.send().await.expect("patch");

    // Assert
    assert_eq!(foreign.status(), 403);
    let body: serde_json::Value = foreign.json().await.expect("json");
    assert_eq!(body["error"]["code"], "foreign_origin");
    assert_eq!(cross_site.status(), 403);
    assert_eq!(same.status(), 200);
    assert_eq!(app.image(&id).await.title, "ok");
    app.stop().await;
}

#[test]
fn the_js_client_unit_tests_pass_under_node() {
    // Files, not the folder: `node --test DIR` stopped meaning "the tests in
    // DIR" in Node 21.
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/web/js-tests");
    let mut files: Vec<_> = std::fs::read_dir(&folder)
        .expect("js-tests folder")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.to_string_lossy().ends_with(".test.mjs"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.test.mjs under {}", folder.display());
    let output = match std::process::Command::new("node").arg("--test").args(&files).output() {
        Ok(output) => output,
        Err(e) => {
            crate::skip::skip("the JS client's node tests", &format!("node not found ({e}): apt-get install nodejs"));
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "node --test failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("# fail 0"), "{stdout}");
    let passed = stdout
        .lines()
        .find_map(|line| line.strip_prefix("# pass "))
        .and_then(|n| n.trim().parse::<u32>().ok())
        .expect("node reports a pass count");
    assert!(passed > 0, "node ran no test:\n{stdout}");
}
