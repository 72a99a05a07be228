//! `/api/admin/jobs`: list, detail, retry, cancel.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pictor::app::Overrides;
use pictor_client::models::{ImageStatus, JobKind, JobStatus};

use crate::helpers::{spawn_app_on, with_breakable_thumbnails};

both_backends! {
    async fn the_job_list_pages_filters_and_shows_details_with_retry_info(backend) {
        let Some(app) = spawn_app_on(backend, |_| {}, Overrides::default(), true).await else { return };
        let id = app.upload_ok("mpl-grace-hopper.jpg").await;
        app.wait_terminal(&id, Duration::from_secs(60)).await;
        let page = app.jobs("limit=2&offset=0").await;
        assert_eq!(page.jobs.len(), 2);
        assert_eq!(
            (
                page.pagination.total,
                page.pagination.limit,
                page.pagination.offset
            ),
            (3, 2, 0)
        );
        assert!(page.pagination.has_more);
        let offloads = app.jobs("type=OFFLOAD_ORIGINAL&status=COMPLETED").await;
        assert_eq!(offloads.pagination.total, 1);
        assert_eq!(offloads.jobs[0].kind, JobKind::OffloadOriginal);

        let detail = app.job(offloads.jobs[0].id).await;
        assert_eq!(detail.status, JobStatus::Completed);
        assert_eq!((detail.attempts, detail.max_attempts), (1, 5));
        assert!(!detail.locked);
        assert_eq!(detail.retry_info.attempt, 1);
        assert_eq!(detail.payload["imageId"], id.as_str());
        assert!(
            detail.payload["tempPath"]
                .as_str()
                .is_some_and(|p| p.starts_with("tmp/"))
        );
        assert_eq!(
            detail.image.as_ref().map(|i| i.id.as_str()),
            Some(id.as_str())
        );

        let unknown = app
            .client
            .get(app.url("/api/admin/jobs/999999"))
            .send()
            .await
            .expect("get");
        assert_eq!(unknown.status(), 404);
        let bad_type = app
            .client
            .get(app.url("/api/admin/jobs?type=RESIZE"))
            .send()
            .await
            .expect("get");
        assert_eq!(bad_type.status(), 400);
        app.stop().await;
    }
}

both_backends! {
    async fn a_failed_job_retried_by_an_operator_completes_and_the_image_is_stored(backend) {
        let broken = Arc::new(AtomicBool::new(true));
        let Some(app) = spawn_app_on(backend, |_| {}, with_breakable_thumbnails(&broken), true).await else {
            return;
        };
        let id = app.upload_ok("mpl-grace-hopper.jpg").await;
        let image = app.wait_terminal(&id, Duration::from_secs(60)).await;
        assert_eq!(image.status, ImageStatus::Failed);
        assert!(
            image
                .error
                .as_deref()
                .is_some_and(|e| e.contains("THUMBNAIL_GENERATION") && e.contains("injected fault"))
        );

        let failed = app.jobs("status=FAILED").await;
        assert_eq!(failed.pagination.total, 1);
        let job_id = failed.jobs[0].id;
        assert_eq!(
            app.job(job_id).await.retry_info.last_error.as_deref(),
            Some("injected fault: thumbnailer out of order")
        );

        broken.store(false, Ordering::SeqCst);
        let response = app
            .client
            .post(app.url(&format!("/api/admin/jobs/{job_id}/retry")))
            .send()
            .await
            .expect("retry");
        assert_eq!(response.status(), 200);
        let image = app.wait_terminal(&id, Duration::from_secs(60)).await;
        assert_eq!(image.status, ImageStatus::Stored, "{:?}", image.error);
        assert_eq!(app.job(job_id).await.status, JobStatus::Completed);

        let again = app
            .client
            .post(app.url(&format!("/api/admin/jobs/{job_id}/retry")))
            .send()
            .await
            .expect("retry");
        assert_eq!(
            again.status(),
            409,
            "only FAILED or CANCELLED jobs can be retried"
        );
        app.stop().await;
    }
}

both_backends! {
    async fn a_pending_job_can_be_cancelled_and_a_cancelled_one_retried(backend) {
        let Some(app) = spawn_app_on(backend, |_| {}, Overrides::default(), false).await else { return };
        app.upload_ok("mpl-grace-hopper.jpg").await;
        let pending = app.jobs("status=PENDING").await;
        assert_eq!(pending.pagination.total, 1);
        let job_id = pending.jobs[0].id;
        let response = app
            .client
            .post(app.url(&format!("/api/admin/jobs/{job_id}/cancel")))
            .send()
            .await
            .expect("cancel");
        assert_eq!(response.status(), 200);
        assert_eq!(app.job(job_id).await.status, JobStatus::Cancelled);
        let response = app
            .client
            .post(app.url(&format!("/api/admin/jobs/{job_id}/retry")))
            .send()
            .await
            .expect("retry");
        assert_eq!(response.status(), 200);
        assert_eq!(app.job(job_id).await.status, JobStatus::Pending);
        app.stop().await;
    }
}
