//! `/healthz` (liveness, no I/O) and `/readyz` (database, storage with a
//! cached check, schema version), on both backends.

use std::sync::Arc;
use std::time::Duration;

use pictor::app::Overrides;
use pictor::clock::ManualClock;
use serde_json::Value;

use crate::helpers::{CLOCK_START, TestApp, spawn_app_on};

/// `/readyz`'s status and JSON body.
async fn readyz(app: &TestApp) -> (u16, Value) {
    let response = app.client.get(app.url("/readyz")).send().await.expect("readyz");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

/// The check named `name` in a `/readyz` body.
fn check<'a>(body: &'a Value, name: &str) -> &'a Value {
    body["checks"].as_array().expect("checks").iter().find(|c| c["name"] == name).expect(name)
}

async fn healthz_status(app: &TestApp) -> u16 {
    app.client.get(app.url("/healthz")).send().await.expect("healthz").status().as_u16()
}

/// An app on `backend` whose queue reads a hand-turned clock (the storage
/// check's cache runs on it), without a runner.
async fn clocked(backend: crate::helpers::Backend) -> Option<(TestApp, ManualClock)> {
    let clock = ManualClock::new(CLOCK_START);
    let overrides = Overrides { clock: Some(Arc::new(clock.clone())), ..Overrides::default() };
    Some((spawn_app_on(backend, |_| {}, overrides, false).await?, clock))
}

both_backends! {
    async fn a_fresh_service_is_ready_and_alive(backend) {
        let Some(app) = spawn_app_on(backend, |_| {}, Overrides::default(), true).await else { return };

        let (status, body) = readyz(&app).await;

        assert_eq!(status, 200, "{body}");
        assert_eq!(body["ready"], true);
        for name in ["database", "storage", "migrations"] {
            assert_eq!(check(&body, name)["ok"], true, "{name}: {body}");
        }
        let live = app.client.get(app.url("/healthz")).send().await.expect("healthz");
        assert_eq!(live.status(), 200);
        assert_eq!(live.text().await.expect("body").trim(), "ok");
        app.stop().await;
    }
}

both_backends! {
    async fn readyz_names_the_storage_once_its_folder_is_gone_and_the_cached_check_expires(backend) {
        let Some((app, clock)) = clocked(backend).await else { return };
        assert_eq!(readyz(&app).await.0, 200);

        std::fs::remove_dir_all(app.dir.path().join("storage")).expect("remove the storage folder");
        let (cached, _) = readyz(&app).await;
        clock.advance(pictor::images::STORAGE_CHECK_TTL + Duration::from_secs(1));
        let (status, body) = readyz(&app).await;

        assert_eq!(cached, 200, "within the cache's lifetime the storage is not written again");
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["ready"], false);
        let storage = check(&body, "storage");
        assert_eq!(storage["ok"], false, "{body}");
        assert!(storage["detail"].as_str().is_some_and(|d| d.contains("No such file")), "{body}");
        assert_eq!(check(&body, "database")["ok"], true, "{body}");
        assert_eq!(check(&body, "migrations")["ok"], true, "{body}");
        assert_eq!(healthz_status(&app).await, 200, "liveness does not look at the storage");
        app.stop().await;
    }
}

both_backends! {
    async fn readyz_names_the_migrations_when_the_schema_is_ahead_of_or_behind_the_binary(backend) {
        let Some(app) = spawn_app_on(backend, |_| {}, Overrides::default(), false).await else { return };
        let pool = &app.app.db.pool;
        let latest = app.app.db.latest_version();

        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             SELECT 9999, 'from the future', success, checksum, execution_time FROM _sqlx_migrations WHERE version = 1",
        )
        .execute(pool)
        .await
        .expect("a migration from a newer binary");
        let (ahead, ahead_body) = readyz(&app).await;
        sqlx::query("DELETE FROM _sqlx_migrations WHERE version >= $1")
            .bind(latest)
            .execute(pool)
            .await
            .expect("forget the newest migrations");
        let (behind, behind_body) = readyz(&app).await;

        assert_eq!(ahead, 503, "{ahead_body}");
        let detail = check(&ahead_body, "migrations")["detail"].as_str().expect("detail").to_owned();
        assert!(detail.contains("9999") && detail.contains("ahead"), "{detail}");
        assert_eq!(behind, 503, "{behind_body}");
        let detail = check(&behind_body, "migrations")["detail"].as_str().expect("detail").to_owned();
        assert!(detail.contains("behind") && detail.contains("pictor migrate"), "{detail}");
        assert_eq!(check(&behind_body, "database")["ok"], true);
        assert_eq!(healthz_status(&app).await, 200);
        app.stop().await;
    }
}

/// The pool pings a PostgreSQL connection that sat idle past
/// `PING_IDLE_AFTER` before handing it out, so one the server dropped
/// meanwhile is replaced rather than failing its next statement. (The wait
/// is real time: the pool's idle clock is not the queue's.)
#[tokio::test]
async fn a_postgres_connection_dropped_while_idle_is_replaced_before_its_next_use() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(url) = crate::helpers::fresh_database(crate::helpers::Backend::Postgres, dir.path()).await else {
        return;
    };
    let db = pictor::db::Db::connect(&url).await.expect("connect");
    let admin = pictor::db::Db::connect(&url).await.expect("connect");
    let first: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&db.pool).await.expect("pid");
    sqlx::query("SELECT pg_terminate_backend($1)").bind(first).execute(&admin.pool).await.expect("terminate");

    tokio::time::sleep(pictor::db::PING_IDLE_AFTER + Duration::from_millis(100)).await;
    let again: i32 =
        sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&db.pool).await.expect("a live connection");

    assert_ne!(again, first, "a new connection");
    db.pool.close().await;
    admin.pool.close().await;
    crate::helpers::drop_database(&url).await;
}
