//! CORS (`PICTOR_CORS_ORIGINS`): a listed origin gets the preflight and
//! response headers, on the API and the JS client, also with the admin
//! token set; another origin gets none and its changes are refused; and
//! without the setting nobody gets them.

use reqwest::header::{self, HeaderMap};
use reqwest::{Method, StatusCode};

use crate::helpers::{Backend, TestApp, spawn_app_on, testdata};

const ALLOWED: &str = "https://gallery.example:8443";
const OTHER: &str = "https://elsewhere.example";
const TOKEN: &str = "cors-test-token";

fn allow_origin(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).map(|v| v.to_str().unwrap())
}

async fn preflight(app: &TestApp, path: &str, origin: &str) -> reqwest::Response {
    app.client
        .request(Method::OPTIONS, app.url(path))
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "authorization,content-type")
        .send()
        .await
        .unwrap()
}

/// A browser's cross-site upload from `origin`, with the token.
async fn upload_from(app: &TestApp, origin: &str) -> reqwest::Response {
    let bytes = std::fs::read(testdata("mpl-grace-hopper.jpg")).unwrap();
    let form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(bytes).file_name("g.jpg"));
    app.client
        .post(app.url("/api/upload"))
        .header(header::ORIGIN, origin)
        .header("sec-fetch-site", "cross-site")
        .bearer_auth(TOKEN)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

both_backends! {
    async fn a_listed_origin_gets_cors_headers_and_another_none(backend) {
        let configure = |c: &mut pictor::config::Config| {
            c.cors_origins = vec![format!("{ALLOWED}/"), "http://localhost:5173".into()];
            c.admin_token = Some(pictor::config::Secret::new(TOKEN));
        };
        let Some(app) = spawn_app_on(backend, configure, Default::default(), false).await else { return };

        let answer = preflight(&app, "/api/upload", ALLOWED).await;
        assert!(answer.status().is_success(), "preflight: {}", answer.status());
        let headers = answer.headers();
        assert_eq!(allow_origin(headers), Some(ALLOWED));
        let methods = headers[header::ACCESS_CONTROL_ALLOW_METHODS].to_str().unwrap();
        assert!(methods.contains("POST") && methods.contains("PATCH") && methods.contains("DELETE"), "{methods}");
        let allowed_headers = headers[header::ACCESS_CONTROL_ALLOW_HEADERS].to_str().unwrap().to_ascii_lowercase();
        assert!(allowed_headers.contains("authorization") && allowed_headers.contains("content-type"), "{allowed_headers}");
        assert!(headers.contains_key(header::ACCESS_CONTROL_MAX_AGE));

        let uploaded = upload_from(&app, ALLOWED).await;
        assert_eq!(uploaded.status(), StatusCode::CREATED);
        assert_eq!(allow_origin(uploaded.headers()), Some(ALLOWED));
        let exposed = uploaded.headers()[header::ACCESS_CONTROL_EXPOSE_HEADERS].to_str().unwrap().to_ascii_lowercase();
        assert!(exposed.contains("location") && exposed.contains("x-request-id"), "{exposed}");

        for path in ["/api/images", "/static/pictor-client.js"] {
            let answer = app.client.get(app.url(path)).header(header::ORIGIN, ALLOWED).send().await.unwrap();
            assert_eq!(answer.status(), 200, "{path}");
            assert_eq!(allow_origin(answer.headers()), Some(ALLOWED), "{path}");
            let vary = answer.headers().get_all(header::VARY).iter().map(|v| v.to_str().unwrap().to_owned()).collect::<Vec<_>>();
            assert!(vary.iter().any(|v| v.to_ascii_lowercase().contains("origin")), "{path}: Vary {vary:?}");
        }
        // Errors carry the headers too, so that a page can read why.
        let refused = app.client.get(app.url("/api/admin/jobs")).header(header::ORIGIN, ALLOWED).send().await.unwrap();
        assert_eq!(refused.status(), 401);
        assert_eq!(allow_origin(refused.headers()), Some(ALLOWED));

        // Another origin: no CORS headers anywhere, and its changes are refused.
        let answer = preflight(&app, "/api/upload", OTHER).await;
        assert_eq!(allow_origin(answer.headers()), None);
        assert!(!answer.headers().contains_key(header::ACCESS_CONTROL_ALLOW_METHODS));
        for path in ["/api/images", "/static/pictor-client.js"] {
            let answer = app.client.get(app.url(path)).header(header::ORIGIN, OTHER).send().await.unwrap();
            assert_eq!(answer.status(), 200);
            assert_eq!(allow_origin(answer.headers()), None, "{path}");
        }
        let foreign = upload_from(&app, OTHER).await;
        assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
        assert_eq!(allow_origin(foreign.headers()), None);
        app.stop().await;
    }
}

#[tokio::test]
async fn without_the_setting_no_origin_gets_cors_headers() {
    let configure = |c: &mut pictor::config::Config| c.admin_token = Some(pictor::config::Secret::new(TOKEN));
    let app = spawn_app_on(Backend::Sqlite, configure, Default::default(), false).await.unwrap();
    let answer = preflight(&app, "/api/upload", ALLOWED).await;
    assert_eq!(allow_origin(answer.headers()), None);
    let answer =
        app.client.get(app.url("/static/pictor-client.js")).header(header::ORIGIN, ALLOWED).send().await.unwrap();
    assert_eq!(allow_origin(answer.headers()), None);
    assert_eq!(upload_from(&app, ALLOWED).await.status(), StatusCode::FORBIDDEN);
    app.stop().await;
}
