//! One decode for the two asset jobs of an image, when image work runs in
//! this process (`PICTOR_IMAGE_SANDBOX=off`; a sandbox child keeps its own).
//! `THUMBNAIL_GENERATION` and `PREVIEW_GENERATION` are enqueued together by
//! the offload and one claim takes both (`db::leases::claim`), so they run
//! side by side in one runner, whichever worker claims them. The first to
//! ask decodes the original at an edge covering both jobs' outputs; the
//! other waits for those pixels instead of decoding again (for progressive
//! JPEGs the decode is most of an image's CPU).
//!
//! An entry leaves once both jobs have taken it. One whose sibling runs
//! elsewhere (a lone retry, a sibling a concurrent claim held) leaves after
//! [`ENTRY_TTL`], or sooner when more than [`CAPACITY`] are held, so memory
//! stays bounded.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use pictor_imaging::Prepared;
use tokio::sync::OnceCell;

use crate::queue::handler::HandlerError;
/// Which of the two jobs takes the pixels (the sandbox's children share decodes the same way).
pub use crate::sandbox::Taker;

/// Longest an entry waits for the second job.
pub const ENTRY_TTL: Duration = Duration::from_secs(15);
/// Most entries held at once (each a preview-sized buffer, ~12 MB at 2048 px).
pub const CAPACITY: usize = 8;

/// Decodes in progress or done, by storage key of the original.
#[derive(Debug, Default)]
pub struct SharedDecodes {
    entries: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug)]
struct Entry {
    cell: Arc<OnceCell<Arc<Prepared>>>,
    thumbnails_taken: bool,
    preview_taken: bool,
    created: Instant,
}

impl SharedDecodes {
    /// The prepared pixels of `original`: decoded by `decode` if no other
    /// job has decoded (or is decoding) them, else theirs.
    ///
    /// # Errors
    /// The decode's error; the entry is then dropped, so a retry decodes anew.
    pub async fn get_or_decode<F, Fut>(
        &self,
        original: &str,
        taker: Taker,
        decode: F,
    ) -> Result<Arc<Prepared>, HandlerError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Arc<Prepared>, HandlerError>>,
    {
        let cell = self.join(original);
        let result = cell.get_or_try_init(decode).await.cloned();
        self.leave(original, &cell, taker, result.is_ok());
        result
    }

    /// How many decodes are held (for tests and logs).
    pub fn held(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn join(&self, original: &str) -> Arc<OnceCell<Arc<Prepared>>> {
        let mut entries = self.lock();
        if let Some(entry) = entries.get(original) {
            return entry.cell.clone();
        }
        entries.retain(|_, entry| entry.created.elapsed() < ENTRY_TTL);
        while entries.len() >= CAPACITY {
            let Some(oldest) = entries.iter().min_by_key(|(_, entry)| entry.created).map(|(key, _)| key.clone()) else {
                break;
            };
            entries.remove(&oldest);
        }
        let cell = Arc::new(OnceCell::new());
        entries.insert(
            original.to_owned(),
            Entry { cell: cell.clone(), thumbnails_taken: false, preview_taken: false, created: Instant::now() },
        );
        cell
    }

    fn leave(&self, original: &str, cell: &Arc<OnceCell<Arc<Prepared>>>, taker: Taker, decoded: bool) {
        let mut entries = self.lock();
        let Some(entry) = entries.get_mut(original).filter(|entry| Arc::ptr_eq(&entry.cell, cell)) else {
            return;
        };
        match taker {
            Taker::Thumbnails => entry.thumbnails_taken = true,
            Taker::Preview => entry.preview_taken = true,
        }
        if !decoded || (entry.thumbnails_taken && entry.preview_taken) {
            entries.remove(original);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn tiny() -> Arc<Prepared> {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/images/tiny-microaneurysms.png");
        let data = std::fs::read(&path).expect("a test image");
        Arc::new(pictor_imaging::prepare(&data, 64, &pictor_imaging::RenderOptions::default()).expect("decodable"))
    }

    #[tokio::test]
    async fn the_two_jobs_of_an_image_decode_once_and_the_entry_leaves_after_both() {
        let shared = SharedDecodes::default();
        let decodes = AtomicUsize::new(0);
        let decode = || async {
            decodes.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            Ok(tiny())
        };

        let (a, b) = tokio::join!(
            shared.get_or_decode("originals/ab/abc", Taker::Thumbnails, decode),
            shared.get_or_decode("originals/ab/abc", Taker::Preview, decode),
        );

        assert_eq!(decodes.load(Ordering::SeqCst), 1, "one decode for both");
        assert!(Arc::ptr_eq(&a.expect("thumbnails"), &b.expect("preview")));
        assert_eq!(shared.held(), 0, "both took it: nothing is held");
    }

    #[tokio::test]
    async fn a_lone_job_leaves_its_entry_for_the_sibling_and_a_failed_decode_leaves_none() {
        let shared = SharedDecodes::default();
        shared.get_or_decode("originals/a", Taker::Preview, || async { Ok(tiny()) }).await.expect("decoded");
        assert_eq!(shared.held(), 1, "kept for the thumbnail job");
        let again = shared
            .get_or_decode("originals/a", Taker::Thumbnails, || async {
                Err(HandlerError::permanent("must not decode again"))
            })
            .await;
        assert!(again.is_ok(), "the sibling reuses the pixels");
        assert_eq!(shared.held(), 0);

        let failed = shared
            .get_or_decode("originals/b", Taker::Preview, || async { Err(HandlerError::permanent("corrupt")) })
            .await;
        assert_eq!(failed.expect_err("the decode's error").to_string(), "corrupt");
        assert_eq!(shared.held(), 0, "a failed decode is not kept");
    }

    #[tokio::test]
    async fn no_more_than_capacity_entries_are_held() {
        let shared = SharedDecodes::default();
        for i in 0..CAPACITY + 3 {
            shared.get_or_decode(&format!("originals/{i}"), Taker::Preview, || async { Ok(tiny()) }).await.expect("ok");
        }
        assert_eq!(shared.held(), CAPACITY);
    }
}
