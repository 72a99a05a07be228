//! `pictor storage migrate --to URL`: a serving Pictor's folder copied into
//! moto's bucket (interrupted, then resumed by the command), every copy
//! verified; a damaged copy copied again; and the bucket copied back into
//! a folder.

use std::ops::ControlFlow;
use std::time::Duration;

use object_store::{ObjectStoreExt as _, PutPayload};
use pictor::app::Overrides;
use pictor::storage::migrate::migrate;
use pictor::storage::{LocalStorage, Storage};
use pictor_client::models::ImageStatus;

use crate::helpers::{Backend, files_under, spawn_app_on, test_config};
use crate::moto::{BUCKET, Moto, PREFIX};
use crate::processes::command;

/// Every object under a storage folder but the temp area, by key, sorted.
fn folder_keys(root: &std::path::Path) -> Vec<String> {
    let mut keys: Vec<String> = files_under(root)
        .iter()
        .map(|f| f.strip_prefix(root).expect("under").display().to_string())
        .filter(|key| !key.starts_with("tmp/"))
        .collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn storage_migrate_copies_a_folder_into_a_bucket_resumably_and_back_verifying_every_copy() {
    let Some(moto) = Moto::start("storage_migrate::storage_migrate_copies_a_folder_into_a_bucket").await else {
        return;
    };
    let app = spawn_app_on(Backend::Sqlite, |_| {}, Overrides::default(), true).await.expect("sqlite");
    for name in ["mpl-grace-hopper.jpg", "sklearn-china.jpg"] {
        let id = app.upload_ok(name).await;
        assert_eq!(app.wait_terminal(&id, Duration::from_secs(120)).await.status, ImageStatus::Stored);
    }
    let root = app.dir.path().join("storage");
    let source = LocalStorage::open(&root).expect("source");
    let keys = folder_keys(&root);
    assert_eq!(keys.len(), 12, "two originals and ten assets: {keys:?}");
    let mut config = test_config(app.dir.path());
    moto.configure(&mut config);
    let url = format!("s3://{BUCKET}/{PREFIX}");
    let bucket = pictor::app::open_storage_at(&config, &url).expect("bucket");

    // Interrupted after five objects.
    let first = migrate(&source, bucket.as_ref(), |step| {
        if step.done == 5 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    })
    .await
    .expect("first run");
    assert_eq!((first.total, first.copied, first.skipped), (12, 5, 0));
    assert_eq!(moto.keys().await.len(), 5);

    // Resumed by the command, while Pictor serves from the folder.
    let mut resume = command(app.dir.path());
    resume.args(["storage", "migrate", "--to", &url]).env("STORAGE_DIR", &root);
    for (name, value) in moto.env() {
        if name != "STORAGE_URL" {
            resume.env(name, value);
        }
    }
    let output = resume.output().expect("pictor storage migrate");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("12 object(s): 7 copied and verified, 5 already there"), "{stdout}");
    assert_eq!(moto.keys().await, keys, "the bucket holds every original and asset");
    for key in &keys {
        let key = pictor::storage::Key::parse(key.as_str()).expect("key");
        assert_eq!(bucket.get(&key).await.expect("copy"), source.get(&key).await.expect("source"), "{key}");
    }

    // A damaged copy (same size, other bytes) is found and copied again.
    let damaged = keys.iter().find(|k| k.starts_with("assets/")).expect("an asset");
    let size = std::fs::metadata(root.join(damaged)).expect("size").len();
    let junk = PutPayload::from(vec![0_u8; usize::try_from(size).expect("size")]);
    moto.store().put(&format!("{PREFIX}/{damaged}").as_str().into(), junk).await.expect("damage");
    let again = migrate(&source, bucket.as_ref(), |_| ControlFlow::Continue(())).await.expect("again");
    assert_eq!((again.copied, again.skipped), (1, 11), "only the damaged copy is copied again");

    // And back into a new folder.
    let back_dir = tempfile::tempdir().expect("back");
    let back = LocalStorage::open(back_dir.path()).expect("back");
    let returned = migrate(bucket.as_ref(), &back, |_| ControlFlow::Continue(())).await.expect("back");
    assert_eq!((returned.copied, returned.skipped), (12, 0));
    assert_eq!(folder_keys(back_dir.path()), keys);
    for key in &keys {
        assert_eq!(std::fs::read(back_dir.path().join(key)).ok(), std::fs::read(root.join(key)).ok(), "{key}");
    }
    app.stop().await;
}
