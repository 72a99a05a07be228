//! `GET /api/openapi.json` against real answers: every operation of the
//! document is driven with real requests (successes and errors), and every
//! answer's status must be documented for its operation, its media type
//! listed, and its JSON body valid against the documented schema.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::RequestBuilder;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_on, testdata};

const TOKEN: &str = "openapi-test-token";

/// The document and what a run has checked against it.
struct Spec {
    doc: Value,
    /// `METHOD /template STATUS` of every checked answer.
    seen: BTreeSet<String>,
}

impl Spec {
    /// Sends `request` as the operation `method template` and checks its answer.
    /// Returns the status and the body (JSON, or `Null` for other media types).
    async fn check(&mut self, method: &str, template: &str, request: RequestBuilder) -> (u16, Value) {
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let media =
            response.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().expect("ascii content type").to_owned());
        let bytes = response.bytes().await.expect("body");
        let operation = &self.doc["paths"][template][method.to_ascii_lowercase()];
        assert!(operation.is_object(), "{method} {template} is not in the document");
        let documented = &operation["responses"][status.to_string()];
        assert!(
            documented.is_object(),
            "{method} {template} answered {status}, which the document does not list: {}",
            String::from_utf8_lossy(&bytes)
        );
        self.seen.insert(format!("{method} {template} {status}"));
        let Some(content) = documented.get("content").and_then(Value::as_object) else {
            assert!(bytes.is_empty(), "{method} {template} {status}: a body where the document has none");
            return (status, Value::Null);
        };
        let media = media.unwrap_or_else(|| panic!("{method} {template} {status}: no Content-Type"));
        let essence = media.split(';').next().unwrap_or_default().trim();
        let listed = content.keys().find(|k| k.as_str() == media || k.split(';').next() == Some(essence));
        let Some(listed) = listed else {
            panic!("{method} {template} {status}: Content-Type {media} is not one of {:?}", content.keys());
        };
        if essence != "application/json" {
            return (status, Value::Null);
        }
        let body: Value = serde_json::from_slice(&bytes).expect("a JSON body");
        let schema = &content[listed]["schema"];
        self.validate(schema, &body, &format!("{method} {template} {status}"));
        (status, body)
    }

    /// Validates `body` against `schema`, whose `$ref`s point into the document's components.
    fn validate(&self, schema: &Value, body: &Value, what: &str) {
        let mut root = schema.clone();
        let root_object = root.as_object_mut().expect("a schema object");
        root_object.insert("components".into(), self.doc["components"].clone());
        let validator = jsonschema::draft202012::new(&root).expect("the document's schema compiles");
        let errors: Vec<String> =
            validator.iter_errors(body).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        assert!(errors.is_empty(), "{what}: the body does not match the document: {errors:#?}\nbody: {body}");
    }

    /// Every operation of the document (`METHOD /template`).
    fn operations(&self) -> BTreeSet<String> {
        let mut all = BTreeSet::new();
        for (path, item) in self.doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                all.insert(format!("{} {path}", method.to_ascii_uppercase()));
            }
        }
        all
    }
}

/// A client sending the admin token with every request.
fn admin_client() -> reqwest::Client {
    let mut headers = HeaderMap::new();
    headers.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {TOKEN}")).expect("header"));
    reqwest::Client::builder().default_headers(headers).build().expect("client")
}

fn upload_form(name: &str, bytes: Vec<u8>) -> Form {
    Form::new().part("file", Part::bytes(bytes).file_name(name.to_owned())).text("title", "conformance")
}

fn file(name: &str) -> Vec<u8> {
    std::fs::read(testdata(name)).expect("test image")
}

/// Waits until the image's status is STORED or FAILED; returns its JSON.
async fn settled(app: &TestApp, client: &reqwest::Client, id: &str) -> Value {
    for _ in 0..600 {
        let image: Value =
            client.get(app.url(&format!("/api/images/{id}"))).send().await.unwrap().json().await.unwrap();
        if image["status"] == "STORED" || image["status"] == "FAILED" {
            return image;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("image {id} never settled");
}

both_backends! {
    async fn every_operation_answers_as_documented(backend) {
        let configure = |c: &mut pictor::config::Config| {
            c.admin_token = Some(pictor::config::Secret::new(TOKEN));
            c.max_upload_bytes = 500_000;
        };
        let Some(app) = spawn_app_on(backend, configure, Default::default(), true).await else { return };
        let c = admin_client();
        let anonymous = reqwest::Client::new();
        let url = |path: &str| app.url(path);

        let document = c.get(url("/api/openapi.json")).send().await.unwrap();
        assert_eq!(document.status(), 200);
        let doc: Value = document.json().await.unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut spec = Spec { doc, seen: BTreeSet::new() };
        spec.check("GET", "/api/openapi.json", c.get(url("/api/openapi.json"))).await;

        // Uploads: one good image, one whose data is damaged (it ends FAILED), and every refusal.
        let (status, body) =
            spec.check("POST", "/api/upload", c.post(url("/api/upload")).multipart(upload_form("g.jpg", file("mpl-grace-hopper.jpg")))).await;
        assert_eq!(status, 201, "{body}");
        let id = body["imageId"].as_str().unwrap().to_owned();
        let (status, body) = spec
            .check("POST", "/api/upload", c.post(url("/api/upload")).multipart(upload_form("t.jpg", file("bad-truncated-bridge.jpg"))))
            .await;
        assert_eq!(status, 201, "{body}");
        let broken = body["imageId"].as_str().unwrap().to_owned();
        let refusals: [(&str, Vec<u8>, u16); 4] = [
            ("text.jpg", file("bad-text-named.jpg"), 415),
            ("empty.jpg", Vec::new(), 415),
            ("bomb.png", file("bad-png-bomb-30000x30000.png"), 422),
            ("large.jpg", file("bridge-klootwijk.jpg"), 413),
        ];
        for (name, bytes, expected) in refusals {
            let (status, body) = spec.check("POST", "/api/upload", c.post(url("/api/upload")).multipart(upload_form(name, bytes))).await;
            assert_eq!(status, expected, "{name}: {body}");
        }
        let no_file = Form::new().text("title", "nothing");
        let (status, body) = spec.check("POST", "/api/upload", c.post(url("/api/upload")).multipart(no_file)).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("missing_file")));
        let (status, body) = spec.check("POST", "/api/upload", c.post(url("/api/upload")).body("not multipart")).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("malformed_upload")));
        let (status, _) = spec.check("POST", "/api/upload", anonymous.post(url("/api/upload")).multipart(upload_form("g.jpg", file("mpl-grace-hopper.jpg")))).await;
        assert_eq!(status, 401);
        let foreign = c.post(url("/api/upload")).header(header::ORIGIN, "http://elsewhere.example")
            .multipart(upload_form("g.jpg", file("mpl-grace-hopper.jpg")));
        assert_eq!(spec.check("POST", "/api/upload", foreign).await.0, 403);

        let image = settled(&app, &c, &id).await;
        assert_eq!(image["status"], "STORED", "{image}");
        assert_eq!(settled(&app, &c, &broken).await["status"], "FAILED");

        // Images.
        for query in ["", "?collection=&status=stored&limit=1&offset=0", "?status=FAILED"] {
            let (status, body) = spec.check("GET", "/api/images", c.get(url(&format!("/api/images{query}")))).await;
            assert_eq!(status, 200, "{body}");
        }
        for (query, code) in [("?limit=0", "invalid_limit"), ("?offset=-1", "invalid_offset"), ("?status=NOPE", "invalid_status"), ("?limit=many", "invalid_query")] {
            let (status, body) = spec.check("GET", "/api/images", c.get(url(&format!("/api/images{query}")))).await;
            assert_eq!((status, body["error"]["code"].as_str()), (400, Some(code)), "{query}");
        }
        let wrong_host = c.get(url("/api/images")).header(header::HOST, "pictor.elsewhere.example");
        assert_eq!(spec.check("GET", "/api/images", wrong_host).await.0, 421);
        assert_eq!(spec.check("GET", "/api/images/{id}", c.get(url(&format!("/api/images/{id}")))).await.0, 200);
        assert_eq!(spec.check("GET", "/api/images/{id}", c.get(url("/api/images/no-such-image"))).await.0, 404);
        let patch = |path: String| c.patch(url(&path));
        let (status, body) = spec
            .check("PATCH", "/api/images/{id}", patch(format!("/api/images/{id}")).json(&json!({"title": "renamed", "collection": "docs"})))
            .await;
        assert_eq!((status, body["title"].as_str(), body["collection"].as_str()), (200, Some("renamed"), Some("docs")));
        let (status, body) =
            spec.check("PATCH", "/api/images/{id}", patch(format!("/api/images/{id}")).json(&json!({"collection": null}))).await;
        assert_eq!((status, &body["collection"]), (200, &Value::Null));
        let not_json = patch(format!("/api/images/{id}")).header(header::CONTENT_TYPE, "application/json").body("{");
        assert_eq!(spec.check("PATCH", "/api/images/{id}", not_json).await.1["error"]["code"], "invalid_body");
        let wrong_shape = patch(format!("/api/images/{id}")).json(&json!({"title": 5}));
        assert_eq!(spec.check("PATCH", "/api/images/{id}", wrong_shape).await.0, 400);
        let long = patch(format!("/api/images/{id}")).json(&json!({"title": "x".repeat(501)}));
        assert_eq!(spec.check("PATCH", "/api/images/{id}", long).await.0, 400);
        let unknown = patch("/api/images/no-such-image".into()).json(&json!({"title": "x"}));
        assert_eq!(spec.check("PATCH", "/api/images/{id}", unknown).await.0, 404);

        // Assets: a thumbnail, its ETag, an unknown one.
        let thumbnail = image["thumbnails"]["64"].as_str().unwrap().to_owned();
        let template = "/assets/{imageId}/{file}";
        let response = c.get(url(&thumbnail)).send().await.unwrap();
        let etag = response.headers()[header::ETAG].to_str().unwrap().to_owned();
        assert_eq!(spec.check("GET", template, c.get(url(&thumbnail))).await.0, 200);
        assert_eq!(spec.check("GET", template, c.get(url(&thumbnail)).header(header::IF_NONE_MATCH, etag)).await.0, 304);
        assert_eq!(spec.check("GET", template, c.get(url(&format!("/assets/{id}/thumb-9.jpg")))).await.0, 404);
        assert_eq!(spec.check("GET", template, c.get(url("/assets/nothing/../x.jpg"))).await.0, 404);

        // Jobs: list, detail, and the operators' actions on a completed and a failed job.
        let (status, list) = spec.check("GET", "/api/admin/jobs", c.get(url(&format!("/api/admin/jobs?imageId={id}&limit=10")))).await;
        assert_eq!(status, 200);
        let completed = list["jobs"][0]["id"].as_i64().unwrap();
        for query in ["?status=nope", "?type=nope", "?limit=1001"] {
            assert_eq!(spec.check("GET", "/api/admin/jobs", c.get(url(&format!("/api/admin/jobs{query}")))).await.0, 400);
        }
        assert_eq!(spec.check("GET", "/api/admin/jobs", anonymous.get(url("/api/admin/jobs"))).await.0, 401);
        let (_, failed) = spec.check("GET", "/api/admin/jobs", c.get(url("/api/admin/jobs?status=FAILED"))).await;
        let failed = failed["jobs"][0]["id"].as_i64().expect("the damaged upload's failed job");
        let detail = "/api/admin/jobs/{id}";
        assert_eq!(spec.check("GET", detail, c.get(url(&format!("/api/admin/jobs/{completed}")))).await.0, 200);
        assert_eq!(spec.check("GET", detail, c.get(url(&format!("/api/admin/jobs/{failed}")))).await.0, 200);
        assert_eq!(spec.check("GET", detail, c.get(url("/api/admin/jobs/999999"))).await.0, 404);
        assert_eq!(spec.check("GET", detail, c.get(url("/api/admin/jobs/seven"))).await.1["error"]["code"], "invalid_path");
        let action = |job: String, verb: &str| c.post(url(&format!("/api/admin/jobs/{job}/{verb}")));
        let (retry, cancel) = ("/api/admin/jobs/{id}/retry", "/api/admin/jobs/{id}/cancel");
        assert_eq!(spec.check("POST", retry, action(completed.to_string(), "retry")).await.0, 409);
        assert_eq!(spec.check("POST", cancel, action(completed.to_string(), "cancel")).await.0, 409);
        assert_eq!(spec.check("POST", retry, action("999999".into(), "retry")).await.0, 404);
        assert_eq!(spec.check("POST", cancel, action("999999".into(), "cancel")).await.0, 404);
        assert_eq!(spec.check("POST", cancel, action("x".into(), "cancel")).await.0, 400);
        assert_eq!(spec.check("POST", retry, action("x".into(), "retry")).await.0, 400);
        let (status, body) = spec.check("POST", cancel, action(failed.to_string(), "cancel")).await;
        assert_eq!((status, body["status"].as_str()), (200, Some("CANCELLED")));
        let (status, body) = spec.check("POST", retry, action(failed.to_string(), "retry")).await;
        assert_eq!(status, 200, "{body}");
        assert!(matches!(body["status"].as_str(), Some("PENDING" | "RUNNING")), "{body}");
        assert_eq!(settled(&app, &c, &broken).await["status"], "FAILED");
        let (status, body) = spec.check("POST", "/api/admin/jobs/retry-failed", c.post(url("/api/admin/jobs/retry-failed"))).await;
        assert_eq!(status, 200, "{body}");
        assert!(body["retried"].as_u64().is_some_and(|n| n >= 1), "{body}");
        let reprocess = "/api/admin/reprocess";
        let (status, body) = spec.check("POST", reprocess, c.post(url(reprocess)).json(&json!({"dryRun": true}))).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["enqueued"], 0, "{body}");
        let unknown_state = c.post(url(reprocess)).json(&json!({"status": "INGESTED"}));
        assert_eq!(spec.check("POST", reprocess, unknown_state).await.1["error"]["code"], "invalid_status");
        assert_eq!(spec.check("POST", reprocess, anonymous.post(url(reprocess)).json(&json!({}))).await.0, 401);

        // The event stream: its head only (the body never ends).
        let events = c.get(url("/api/events")).send().await.unwrap();
        assert_eq!(events.status(), 200);
        let media = events.headers()[header::CONTENT_TYPE].to_str().unwrap();
        assert!(spec.doc["paths"]["/api/events"]["get"]["responses"]["200"]["content"][media].is_object(), "{media}");
        spec.seen.insert("GET /api/events 200".into());
        drop(events);

        // Operations.
        assert_eq!(spec.check("GET", "/healthz", c.get(url("/healthz"))).await.0, 200);
        let (status, body) = spec.check("GET", "/readyz", c.get(url("/readyz"))).await;
        assert_eq!((status, &body["ready"]), (200, &Value::Bool(true)));
        assert_eq!(spec.check("GET", "/metrics", c.get(url("/metrics"))).await.0, 200);
        assert_eq!(spec.check("GET", "/metrics", anonymous.get(url("/metrics"))).await.0, 401);

        // Deleting last.
        assert_eq!(spec.check("DELETE", "/api/images/{id}", c.delete(url(&format!("/api/images/{id}")))).await.0, 204);
        assert_eq!(spec.check("DELETE", "/api/images/{id}", c.delete(url(&format!("/api/images/{id}")))).await.0, 404);
        assert_eq!(spec.check("DELETE", "/api/images/{id}", anonymous.delete(url(&format!("/api/images/{broken}")))).await.0, 401);

        // Every documented operation was driven.
        let driven: BTreeSet<String> =
            spec.seen.iter().map(|s| s.rsplit_once(' ').expect("status").0.to_owned()).collect();
        let missing: Vec<_> = spec.operations().difference(&driven).cloned().collect();
        assert!(missing.is_empty(), "operations never driven: {missing:?}");
        app.stop().await;
    }
}

/// The readiness check's 503 matches the document too.
#[tokio::test]
async fn an_unready_answer_matches_the_document() {
    let app = crate::helpers::spawn_app().await;
    let doc: Value = app.client.get(app.url("/api/openapi.json")).send().await.unwrap().json().await.unwrap();
    let mut spec = Spec { doc, seen: BTreeSet::new() };
    std::fs::remove_dir_all(app.dir.path().join("storage")).unwrap();
    let (status, body) = spec.check("GET", "/readyz", app.client.get(app.url("/readyz"))).await;
    assert_eq!((status, &body["ready"]), (503, &Value::Bool(false)), "{body}");
    app.stop().await;
}

#[test]
fn a_body_off_the_document_fails_validation() {
    let doc = pictor::http::openapi::openapi().clone();
    let spec = Spec { doc, seen: BTreeSet::new() };
    let schema = json!({"$ref": "#/components/schemas/UploadResponse"});
    let good = json!({"imageId": "a", "status": "INGESTED", "checksum": "00", "sizeBytes": 1, "uploadedAt": "t"});
    spec.validate(&schema, &good, "good");
    let bad = json!({"imageId": "a", "status": "SOMEWHERE", "checksum": "00", "sizeBytes": 1, "uploadedAt": "t"});
    let refused = std::panic::catch_unwind(|| spec.validate(&schema, &bad, "bad"));
    assert!(refused.is_err(), "an unknown status must not validate");
}
