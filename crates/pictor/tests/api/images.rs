//! `/api/images`: list, filters, pagination, edit, delete; asset caching.

use std::time::Duration;

use pictor_client::models::{ImageList, ImageStatus};

use pictor::app::Overrides;

use crate::helpers::{count_files, spawn_app, spawn_app_on, testdata};

both_backends! {
    async fn the_list_filters_by_collection_and_status_and_pages_with_totals(backend) {
        let Some(app) = spawn_app_on(backend, |_| {}, Overrides::default(), true).await else { return };
        let bytes = std::fs::read(testdata("mpl-grace-hopper.jpg")).expect("image");
        let mut ids = Vec::new();
        for (i, collection) in ["cats", "cats", "dogs"].iter().enumerate() {
            let response = app
                .upload_bytes(&format!("p{i}.jpg"), bytes.clone(), None, Some(collection))
                .await;
            let body: serde_json::Value = response.json().await.expect("json");
            ids.push(body["imageId"].as_str().expect("id").to_owned());
        }
        for id in &ids {
            app.wait_terminal(id, Duration::from_secs(60)).await;
        }
        let list: ImageList = app
            .client
            .get(app.url("/api/images?collection=cats&limit=1"))
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        assert_eq!(list.count, 2);
        assert_eq!(list.data.len(), 1);
        assert!(list.pagination.has_more);
        assert_eq!(list.data[0].collection.as_deref(), Some("cats"));
        let names: Vec<(String, u64)> = list
            .collections
            .iter()
            .map(|c| (c.name.clone(), c.count))
            .collect();
        assert_eq!(names, vec![("cats".to_owned(), 2), ("dogs".to_owned(), 1)]);

        let stored: ImageList = app
            .client
            .get(app.url("/api/images?status=STORED"))
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        assert_eq!(stored.count, 3);
        assert!(
            stored
                .data
                .iter()
                .all(|i| i.status == ImageStatus::Stored && i.processing_jobs.len() == 3)
        );
        let failed: ImageList = app
            .client
            .get(app.url("/api/images?status=FAILED"))
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        assert_eq!(failed.count, 0);

        let bad = app
            .client
            .get(app.url("/api/images?status=DONE"))
            .send()
            .await
            .expect("list");
        assert_eq!(bad.status(), 400);
        app.stop().await;
    }
}

#[tokio::test]
async fn editing_changes_title_and_collection_and_null_clears_the_collection() {
    let app = spawn_app().await;
    let id = app.upload_ok("sklearn-china.jpg").await;
    assert_eq!(app.image(&id).await.title, "sklearn-china", "title defaults to the file name");
    let url = app.url(&format!("/api/images/{id}"));
    let response = app
        .client
        .patch(&url)
        .json(&serde_json::json!({"title": "Temple", "collection": "travel"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(response.status(), 200);
    let image = app.image(&id).await;
    assert_eq!((image.title.as_str(), image.collection.as_deref()), ("Temple", Some("travel")));

    app.client.patch(&url).json(&serde_json::json!({"collection": null})).send().await.expect("patch");
    let image = app.image(&id).await;
    assert_eq!((image.title.as_str(), image.collection), ("Temple", None));

    let empty = app.client.patch(&url).json(&serde_json::json!({"title": "  "})).send().await.expect("patch");
    assert_eq!(empty.status(), 400);
    let missing = app
        .client
        .patch(app.url("/api/images/nope"))
        .json(&serde_json::json!({"title": "x"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(missing.status(), 404);
    app.stop().await;
}

both_backends! {
    async fn deleting_an_image_removes_its_row_assets_and_unshared_original(backend) {
        let Some(app) = spawn_app_on(backend, |_| {}, Overrides::default(), true).await else { return };
        let id = app.upload_ok("skimage-coffee.png").await;
        let image = app.wait_terminal(&id, Duration::from_secs(60)).await;
        assert_eq!(image.status, ImageStatus::Stored);
        let storage = app.dir.path().join("storage");
        assert_eq!(count_files(&storage.join("assets")), 5);
        assert_eq!(count_files(&storage.join("originals")), 1);

        let response = app
            .client
            .delete(app.url(&format!("/api/images/{id}")))
            .send()
            .await
            .expect("delete");
        assert_eq!(response.status(), 204);
        assert_eq!(
            app.client
                .get(app.url(&format!("/api/images/{id}")))
                .send()
                .await
                .expect("get")
                .status(),
            404
        );
        assert_eq!(count_files(&storage.join("assets")), 0, "assets removed");
        assert_eq!(
            count_files(&storage.join("originals")),
            0,
            "the unshared original removed"
        );
        let asset = app
            .client
            .get(app.url(image.preview_path.as_deref().expect("preview")))
            .send()
            .await
            .expect("get");
        assert_eq!(asset.status(), 404);
        app.stop().await;
    }
}

#[tokio::test]
async fn assets_have_a_strong_etag_immutable_caching_and_answer_304_to_a_match() {
    let app = spawn_app().await;
    let id = app.upload_ok("mpl-grace-hopper.jpg").await;
    let image = app.wait_terminal(&id, Duration::from_secs(60)).await;
    let url = app.url(image.thumbnail_path.as_deref().expect("thumbnail"));
    let response = app.client.get(&url).send().await.expect("asset");
    assert_eq!(response.headers()["content-type"], "image/jpeg");
    assert_eq!(response.headers()["cache-control"], "public, max-age=31536000, immutable");
    let etag = response.headers()["etag"].to_str().expect("etag").to_owned();
    assert!(etag.starts_with('"') && !etag.starts_with("W/"), "strong ETag: {etag}");
    let again = app.client.get(&url).header("if-none-match", &etag).send().await.expect("asset");
    assert_eq!(again.status(), 304);
    let escape = app.client.get(app.url("/assets/..%2F..%2Fpictor.db")).send().await.expect("asset");
    assert_eq!(escape.status(), 404, "no path outside assets/");
    app.stop().await;
}
