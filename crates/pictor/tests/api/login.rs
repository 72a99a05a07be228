//! Browser sessions with an admin token set: the admin pages send a browser
//! to the login page, the token typed there opens a signed session cookie
//! that pages and API accept until logout; and `PICTOR_PUBLIC_READ=false`
//! closes the image reads to anyone without the token or a session.

use pictor::app::Overrides;
use pictor::config::Secret;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

use crate::helpers::{TestApp, spawn_app_with};

const TOKEN: &str = "s3cret-admin-token";

/// A client that shows redirects instead of following them.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

/// Logs in with `token` and returns the answer.
async fn log_in(app: &TestApp, token: &str, next: &str) -> reqwest::Response {
    no_redirects()
        .post(app.url("/admin/login"))
        .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string([("token", token), ("next", next)]).expect("form"))
        .send()
        .await
        .expect("login")
}

/// The session cookie a login answer sets, as a `Cookie` header value.
fn session_of(answer: &reqwest::Response) -> String {
    let set = answer.headers().get(SET_COOKIE).expect("a session cookie").to_str().expect("text");
    set.split(';').next().expect("name=value").to_owned()
}

async fn upload_with_token(app: &TestApp) -> String {
    let answer = app.upload_file_with_token("mpl-grace-hopper.jpg", TOKEN).await;
    assert_eq!(answer.status(), 201);
    let body: serde_json::Value = answer.json().await.expect("json");
    body["imageId"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn with_a_token_the_admin_pages_need_a_login_whose_session_works_until_logout() {
    let app = spawn_app_with(|c| c.admin_token = Some(Secret::new(TOKEN)), Overrides::default(), false).await;
    let id = upload_with_token(&app).await;
    let client = no_redirects();

    let page = client.get(app.url("/admin/jobs?status=FAILED")).send().await.expect("jobs page");
    assert_eq!(page.status(), 303);
    assert_eq!(page.headers()[LOCATION], "/admin/login?next=%2Fadmin%2Fjobs%3Fstatus%3DFAILED");
    let form = client.get(app.url("/admin/login?next=%2Fadmin%2Fjobs")).send().await.expect("login page");
    assert_eq!(form.status(), 200);
    assert!(form.text().await.expect("html").contains("name=\"token\""));

    let wrong = log_in(&app, "not-the-token", "/admin/jobs").await;
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get(SET_COOKIE).is_none());
    assert!(wrong.text().await.expect("html").contains("not the admin token"));

    let right = log_in(&app, TOKEN, "/admin/jobs?status=FAILED").await;
    assert_eq!(right.status(), 303);
    assert_eq!(right.headers()[LOCATION], "/admin/jobs?status=FAILED");
    let set = right.headers()[SET_COOKIE].to_str().expect("text").to_owned();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/"), "{set}");
    assert!(!set.contains(TOKEN), "the cookie holds a session, not the token: {set}");
    let session = session_of(&right);

    let jobs = client.get(app.url("/admin/jobs")).header(COOKIE, &session).send().await.expect("jobs page");
    assert_eq!(jobs.status(), 200);
    assert!(jobs.text().await.expect("html").contains("id=\"logout-button\""));
    let api = client.get(app.url("/api/admin/jobs")).header(COOKIE, &session).send().await.expect("jobs");
    assert_eq!(api.status(), 200);
    let renamed = client
        .patch(app.url(&format!("/api/images/{id}")))
        .header(COOKIE, &session)
        .json(&serde_json::json!({"title": "renamed in a session"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(renamed.status(), 200);
    let mut forged = session.clone();
    forged.pop();
    forged.push(if session.ends_with('0') { '1' } else { '0' });
    let refused = client.get(app.url("/api/admin/jobs")).header(COOKIE, &forged).send().await.expect("jobs");
    assert_eq!(refused.status(), 401);

    let elsewhere = log_in(&app, TOKEN, "//evil.example/").await;
    assert_eq!(elsewhere.headers()[LOCATION], "/admin/jobs", "a login never sends the browser off site");
    let out = client.post(app.url("/admin/logout")).header(COOKIE, &session).send().await.expect("logout");
    assert_eq!(out.status(), 303);
    assert!(out.headers()[SET_COOKIE].to_str().expect("text").contains("pictor_session=; Path=/; Max-Age=0"));
    app.stop().await;
}

#[tokio::test]
async fn with_public_read_off_images_pages_and_events_need_the_token_or_a_session() {
    let app = spawn_app_with(
        |c| {
            c.admin_token = Some(Secret::new(TOKEN));
            c.public_read = false;
        },
        Overrides::default(),
        false,
    )
    .await;
    let id = upload_with_token(&app).await;
    let client = no_redirects();
    let status = |path: &str| {
        let request = client.get(app.url(path));
        async move { request.send().await.expect("request").status().as_u16() }
    };

    for path in ["/api/images", &format!("/api/images/{id}"), &format!("/assets/{id}/thumb_256.jpg"), "/api/events"] {
        assert_eq!(status(path).await, 401, "{path}");
    }
    let gallery = client.get(app.url("/")).send().await.expect("gallery");
    assert_eq!(gallery.status(), 303);
    assert_eq!(gallery.headers()[LOCATION], "/admin/login?next=%2F");
    for path in ["/healthz", "/readyz", "/static/app.css", "/admin/login"] {
        assert_eq!(status(path).await, 200, "{path} stays open");
    }

    let listed = client.get(app.url("/api/images")).bearer_auth(TOKEN).send().await.expect("list");
    assert_eq!(listed.status(), 200);
    let session = session_of(&log_in(&app, TOKEN, "/").await);
    let gallery = client.get(app.url("/")).header(COOKIE, &session).send().await.expect("gallery");
    assert_eq!(gallery.status(), 200);
    assert!(gallery.text().await.expect("html").contains(&id), "the gallery shows the image to a session");
    app.stop().await;
}
