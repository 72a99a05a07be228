//! Finding, listing, editing and deleting images.

use pictor_client::models::{CollectionCount, Image, ImageList, ImageUpdate, Pagination};

use super::events::Change;
use super::upload::{MAX_TEXT_FIELD_CHARS, text_field_too_long};
use super::webhooks::Event;
use super::{Images, ImagesError, ImagesResult, Page, view};
use sqlx::AnyPool;

use crate::clock::Millis;
use crate::db::images::{ImageKey, ImageRecord};
use crate::db::{self, DbResult, Durability, ImageId, Listed};
use crate::storage::{OriginalKey, TempKey};

/// Filters of the image list.
pub use crate::db::images::ImageFilter;

impl Images {
    /// One image with its jobs.
    ///
    /// # Errors
    /// [`ImagesError::NotFound`]; the database failed.
    pub async fn find(&self, id: &str) -> ImagesResult<Image> {
        let record = db::images::get(&self.db.pool, &ImageId::from(id)).await?.ok_or_else(|| not_found(id))?;
        let mut images = self.with_jobs(std::slice::from_ref(&record)).await?;
        images.pop().ok_or_else(|| not_found(id))
    }

    /// A page of images, newest first, with every collection's count.
    ///
    /// # Errors
    /// A cursor that is not one this list gave; the database failed.
    pub async fn list(&self, filter: &ImageFilter, page: Page) -> ImagesResult<ImageList> {
        let listed = self.list_records(filter, &page).await?;
        let data = self.with_jobs(&listed.rows).await?;
        let collections = self
            .collections()
            .await?
            .into_iter()
            .map(|(name, count)| CollectionCount { name, count: count.max(0).unsigned_abs() })
            .collect();
        Ok(ImageList {
            data,
            collections,
            count: listed.total.max(0).unsigned_abs(),
            pagination: pagination(&listed, &page),
        })
    }

    /// A page of images without their jobs (the gallery's cards), how many
    /// match in all, and the cursor of the next page when there is one.
    ///
    /// # Errors
    /// A cursor that is not one this list gave; the database failed.
    pub async fn list_cards(
        &self,
        filter: &ImageFilter,
        page: Page,
    ) -> ImagesResult<(Vec<Image>, i64, Option<String>)> {
        let listed = self.list_records(filter, &page).await?;
        let next = pagination(&listed, &page).next_cursor;
        Ok((listed.rows.iter().map(|r| view::image(r, &[])).collect(), listed.total, next))
    }

    async fn list_records(&self, filter: &ImageFilter, page: &Page) -> ImagesResult<Listed<ImageRecord>> {
        let window = page.window(parse_cursor)?;
        Ok(db::images::list(&self.db.pool, filter, &window).await?)
    }

    /// Every collection with its image count, by name.
    ///
    /// # Errors
    /// The database failed.
    pub async fn collections(&self) -> ImagesResult<Vec<(String, i64)>> {
        Ok(db::images::collections(&self.db.pool).await?)
    }

    async fn with_jobs(&self, records: &[ImageRecord]) -> ImagesResult<Vec<Image>> {
        Ok(with_jobs(&self.db.pool, records).await?)
    }

    /// Changes an image's title and/or collection (`Some(None)` clears the
    /// collection).
    ///
    /// # Errors
    /// An empty or too long title, nothing to change, no such image, or a
    /// database failure.
    pub async fn update(&self, id: &str, update: &ImageUpdate) -> ImagesResult<Image> {
        let title = update.title.as_deref().map(str::trim);
        if title.is_some_and(str::is_empty) {
            return Err(ImagesError::invalid("invalid_title", "the title must not be empty"));
        }
        let collection = update.collection.as_ref().map(|c| c.as_deref().map(str::trim).filter(|c| !c.is_empty()));
        if title.is_none() && collection.is_none() {
            return Err(ImagesError::invalid("nothing_to_update", "send `title` and/or `collection`"));
        }
        for (name, value) in [("title", title), ("collection", collection.flatten())] {
            if value.is_some_and(|v| v.chars().count() > MAX_TEXT_FIELD_CHARS) {
                return Err(text_field_too_long(name));
            }
        }
        let mut conn = self.db.write_connection(Durability::Acknowledged).await?;
        if !db::images::update_details(&mut *conn, &ImageId::from(id), title, collection, self.now()).await? {
            return Err(not_found(id));
        }
        drop(conn);
        // The poller reads the changed row and publishes it.
        self.events.nudge();
        self.find(id).await
    }

    /// Deletes an image, its idle jobs, its assets and its upload, and its
    /// original when no other image uses it. A job of the image running
    /// meanwhile finds it gone when it completes, enqueues nothing and
    /// removes what it wrote ([`super::ImageEffects`]).
    ///
    /// # Errors
    /// No such image, or the database or storage failed.
    pub async fn delete(&self, id: &str) -> ImagesResult<()> {
        let image_id = ImageId::from(id);
        let mut tx = self.db.begin_write(Durability::Acknowledged).await?;
        let record = db::images::delete(&mut *tx, &image_id).await?.ok_or_else(|| not_found(id))?;
        db::jobs::delete_idle_for_image(&mut *tx, &image_id).await?;
        self.webhooks.queue(&mut tx, self.db.backend, Event::Deleted, &record, self.now()).await?;
        tx.commit().await?;
        if self.webhooks.enabled() {
            self.queue.wake();
        }
        self.events.publish(Change::ImageDeleted(id.to_owned()));
        // Files go after the rows: a crash in between leaves unreferenced
        // files, never rows that point at nothing (DESIGN invariant 9).
        self.storage.delete_assets(&record.id).await?;
        if let Some(upload) = record.temp_path.as_deref() {
            // An upload belongs to its image alone.
            self.storage.abort(&TempKey::parse(upload)?).await?;
        }
        // The original is the checksum's, whether or not the offload has
        // recorded it yet: it may have moved the upload there already.
        let original = OriginalKey::for_checksum(&record.checksum)?;
        self.originals.remove_if_unused(self.storage.as_ref(), &original).await?;
        Ok(())
    }
}

/// Presents images with their jobs (one query for all the jobs).
pub(super) async fn with_jobs(pool: &AnyPool, records: &[ImageRecord]) -> DbResult<Vec<Image>> {
    let ids: Vec<&ImageId> = records.iter().map(|r| &r.id).collect();
    let jobs = db::jobs::for_images(pool, &ids).await?;
    Ok(records
        .iter()
        .map(|r| {
            let mine: Vec<_> = jobs.iter().filter(|j| j.image_id.as_ref() == Some(&r.id)).collect();
            view::image(r, &mine)
        })
        .collect())
}

/// An image's place in the list as a cursor: `<created_at>_<id>`.
fn cursor(key: &ImageKey) -> String {
    format!("{}_{}", key.created_at.get(), key.id)
}

fn parse_cursor(text: &str) -> Option<ImageKey> {
    let (created_at, id) = text.split_once('_')?;
    Some(ImageKey { created_at: Millis(created_at.parse().ok()?), id: ImageId::from(id) })
}

/// The paging figures of a page of images.
fn pagination(listed: &Listed<ImageRecord>, page: &Page) -> Pagination {
    let next = listed.rows.last().map(|r| cursor(&r.key()));
    view::pagination(listed.total, page.limit, page.offset, listed.has_more, next)
}

fn not_found(id: &str) -> ImagesError {
    ImagesError::NotFound(format!("image {id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_as_the_key_it_was_made_from() {
        let key = ImageKey { created_at: Millis(1_700_000_000_123), id: ImageId::from("0193-a") };
        assert_eq!(parse_cursor(&cursor(&key)), Some(key));
        assert_eq!(parse_cursor("nonsense"), None);
        assert_eq!(parse_cursor("x_id"), None);
    }
}
