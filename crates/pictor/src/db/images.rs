//! SQL of the `image` table. Paths are storage keys (`originals/…`,
//! `assets/…`); the HTTP layer turns them into URLs.

use std::collections::BTreeMap;

use pictor_client::models::ImageStatus;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, Executor, Row};

use super::{Backend, DbResult, ImageId, Listed, Window, where_clause};
use crate::clock::Millis;

const COLUMNS: &str = "id, title, collection, status, checksum, size_bytes, format, width, height, orientation, \
                       temp_path, original_path, thumbnail_path, thumbnails, thumbhash, preview_path, previews, last_error, \
                       thumbnail_settings, preview_settings, created_at, updated_at";

/// A row of the `image` table.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRecord {
    /// Id (UUID v7).
    pub id: ImageId,
    /// Title.
    pub title: String,
    /// Collection, if any.
    pub collection: Option<String>,
    /// Life-cycle state.
    pub status: ImageStatus,
    /// SHA-256 of the original, hex.
    pub checksum: String,
    /// Size of the original, bytes.
    pub size_bytes: i64,
    /// Format recognised from the content.
    pub format: String,
    /// Display width (after EXIF orientation).
    pub width: i64,
    /// Display height.
    pub height: i64,
    /// EXIF orientation of the original, 1–8.
    pub orientation: i64,
    /// Storage key of the upload until it is offloaded.
    pub temp_path: Option<String>,
    /// Storage key of the original once offloaded.
    pub original_path: Option<String>,
    /// Storage key of the 256 px thumbnail (the card's `thumbnail_path`).
    pub thumbnail_path: Option<String>,
    /// Storage key of each thumbnail by longest edge.
    pub thumbnails: BTreeMap<u32, String>,
    /// ThumbHash of the image, base64, once the thumbnails exist.
    pub thumbhash: Option<String>,
    /// Storage key of the preview (the JPEG).
    pub preview_path: Option<String>,
    /// Storage key of each encoding of the preview, by format name.
    pub previews: BTreeMap<String, String>,
    /// Why processing failed.
    pub last_error: Option<String>,
    /// What made the thumbnails (`AssetSettings::thumbnail_settings`);
    /// `None` before they exist, or for assets made before it was recorded.
    pub thumbnail_settings: Option<String>,
    /// What made the preview (`AssetSettings::preview_settings`), likewise.
    pub preview_settings: Option<String>,
    /// Upload time.
    pub created_at: Millis,
    /// Last change.
    pub updated_at: Millis,
}

fn image_from_row(row: &AnyRow) -> Result<ImageRecord, sqlx::Error> {
    let status: String = row.try_get("status")?;
    let thumbnails = json_map(row.try_get("thumbnails")?)?;
    let previews = json_map(row.try_get("previews")?)?;
    Ok(ImageRecord {
        id: ImageId::from(row.try_get::<String, _>("id")?),
        title: row.try_get("title")?,
        collection: row.try_get("collection")?,
        status: status.parse().map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        checksum: row.try_get("checksum")?,
        size_bytes: row.try_get("size_bytes")?,
        format: row.try_get("format")?,
        width: row.try_get("width")?,
        height: row.try_get("height")?,
        orientation: row.try_get("orientation")?,
        temp_path: row.try_get("temp_path")?,
        original_path: row.try_get("original_path")?,
        thumbnail_path: row.try_get("thumbnail_path")?,
        thumbnails,
        thumbhash: row.try_get("thumbhash")?,
        preview_path: row.try_get("preview_path")?,
        previews,
        last_error: row.try_get("last_error")?,
        thumbnail_settings: row.try_get("thumbnail_settings")?,
        preview_settings: row.try_get("preview_settings")?,
        created_at: Millis(row.try_get("created_at")?),
        updated_at: Millis(row.try_get("updated_at")?),
    })
}

/// A map stored as JSON text; NULL is empty.
fn json_map<K: Ord + serde::de::DeserializeOwned>(json: Option<String>) -> Result<BTreeMap<K, String>, sqlx::Error> {
    match json {
        Some(json) => serde_json::from_str(&json).map_err(|e| sqlx::Error::Decode(Box::new(e))),
        None => Ok(BTreeMap::new()),
    }
}

/// What ingest knows of a new image.
#[derive(Debug, Clone)]
pub struct NewImage {
    /// Id.
    pub id: ImageId,
    /// Title.
    pub title: String,
    /// Collection.
    pub collection: Option<String>,
    /// SHA-256, hex.
    pub checksum: String,
    /// Bytes.
    pub size_bytes: i64,
    /// Format name.
    pub format: String,
    /// Display width.
    pub width: i64,
    /// Display height.
    pub height: i64,
    /// EXIF orientation.
    pub orientation: i64,
    /// Storage key of the temp file.
    pub temp_path: String,
}

/// Inserts an INGESTED image.
///
/// # Errors
/// The database failed.
pub async fn insert_ingested<'c, E: Executor<'c, Database = Any>>(
    exec: E,
    image: &NewImage,
    now: Millis,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO image (id, title, collection, status, checksum, size_bytes, format, width, height, \
                            orientation, temp_path, created_at, updated_at) \
         VALUES ($1, $2, $3, 'INGESTED', $4, $5, $6, $7, $8, $9, $10, $11, $11)",
    )
    .bind(image.id.as_str())
    .bind(&image.title)
    .bind(image.collection.as_deref())
    .bind(&image.checksum)
    .bind(image.size_bytes)
    .bind(&image.format)
    .bind(image.width)
    .bind(image.height)
    .bind(image.orientation)
    .bind(&image.temp_path)
    .bind(now.get())
    .execute(exec)
    .await?;
    Ok(())
}

/// One image by id.
///
/// # Errors
/// The database failed.
pub async fn get<'c, E: Executor<'c, Database = Any>>(exec: E, id: &ImageId) -> DbResult<Option<ImageRecord>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM image WHERE id = $1")))
        .bind(id.as_str())
        .fetch_optional(exec)
        .await?;
    Ok(row.as_ref().map(image_from_row).transpose()?)
}

/// Filters of the image list.
#[derive(Debug, Clone, Default)]
pub struct ImageFilter {
    /// Only this collection.
    pub collection: Option<String>,
    /// Only this state.
    pub status: Option<ImageStatus>,
}

/// Where an image sits in the list's order (newest first): the keyset
/// cursor of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageKey {
    /// Upload time.
    pub created_at: Millis,
    /// Id, which breaks ties of upload time.
    pub id: ImageId,
}

impl ImageRecord {
    /// Whether `key` is one of this image's assets as its row names them.
    pub fn references(&self, key: &str) -> bool {
        self.thumbnails.values().chain(self.previews.values()).any(|k| k == key)
            || self.thumbnail_path.as_deref() == Some(key)
            || self.preview_path.as_deref() == Some(key)
    }

    /// This image's place in the list, for the cursor of the page it ends.
    pub fn key(&self) -> ImageKey {
        ImageKey { created_at: self.created_at, id: self.id.clone() }
    }
}

/// A page of images, newest first, and how many match in all (from
/// `image_count`, not counted). A page after a cursor seeks to it in the
/// index of its filter; one past the middle, without a cursor, is read
/// from the oldest end (see [`Window`]).
///
/// # Errors
/// The database failed.
pub async fn list(pool: &AnyPool, filter: &ImageFilter, window: &Window<ImageKey>) -> DbResult<Listed<ImageRecord>> {
    // Only the filters given, so that the planner can read the index of
    // each (a `$1 IS NULL OR ...` form would scan the table).
    let status = filter.status.map(ImageStatus::as_str);
    let given: Vec<(&str, &str)> = [("collection", filter.collection.as_deref()), ("status", status)]
        .into_iter()
        .filter_map(|(column, value)| value.map(|v| (column, v)))
        .collect();
    let mut conditions: Vec<String> =
        given.iter().enumerate().map(|(i, (column, _))| format!("{column} = ${}", i + 1)).collect();
    let mut count = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) AS n FROM image_count{}",
        where_clause(&conditions)
    )));
    for (_, value) in &given {
        count = count.bind(*value);
    }
    let total: i64 = count.fetch_one(pool).await?.try_get("n")?;
    if window.after.is_some() {
        conditions.push(format!("(created_at, id) < (${}, ${})", given.len() + 1, given.len() + 2));
    }
    let plan = window.plan(total);
    let order = plan.order("created_at DESC, id DESC", "created_at, id");
    let mut page = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM image{} ORDER BY {order} LIMIT {} OFFSET {}",
        where_clause(&conditions),
        plan.limit,
        plan.offset
    )));
    for (_, value) in &given {
        page = page.bind(*value);
    }
    if let Some(after) = &window.after {
        page = page.bind(after.created_at.get()).bind(after.id.as_str());
    }
    let rows = page.fetch_all(pool).await?;
    let records = rows.iter().map(image_from_row).collect::<Result<Vec<_>, _>>()?;
    Ok(plan.listed(records, total))
}

/// Every collection with its image count, by name (from `image_count`).
///
/// # Errors
/// The database failed.
pub async fn collections(pool: &AnyPool) -> DbResult<Vec<(String, i64)>> {
    let rows = sqlx::query(
        "SELECT collection, CAST(SUM(n) AS BIGINT) AS n FROM image_count WHERE collection <> '' \
         GROUP BY collection HAVING SUM(n) > 0 ORDER BY collection",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.iter().map(|r| Ok((r.try_get("collection")?, r.try_get("n")?))).collect::<Result<_, sqlx::Error>>()?)
}

/// Which images a reprocess looks at, and the settings that are current.
#[derive(Debug, Clone)]
pub struct OutdatedFilter<'a> {
    /// Only images in this state.
    pub status: ImageStatus,
    /// Only this collection.
    pub collection: Option<&'a str>,
    /// What thumbnails made now record ([`ImageRecord::thumbnail_settings`]).
    pub thumbnail_settings: &'a str,
    /// What a preview made now records ([`ImageRecord::preview_settings`]).
    pub preview_settings: &'a str,
}

/// An image whose assets were made under other settings than the current
/// ones (or before settings were recorded).
#[derive(Debug, Clone, PartialEq)]
pub struct OutdatedImage {
    /// The image.
    pub id: ImageId,
    /// Its state.
    pub status: ImageStatus,
    /// Storage key of its original, which its assets are made again from.
    pub original_path: String,
    /// Its place in upload order (the next batch's start).
    pub key: ImageKey,
}

/// Up to `limit` outdated images that have their original, oldest first,
/// after `after`. Read in the index of the filter's collection or state, by
/// keyset, so that a whole library is read once in batches.
///
/// # Errors
/// The database failed.
pub async fn outdated(
    pool: &AnyPool,
    filter: &OutdatedFilter<'_>,
    after: Option<&ImageKey>,
    limit: i64,
) -> DbResult<Vec<OutdatedImage>> {
    let mut conditions = vec![
        "status = $1".to_owned(),
        "original_path IS NOT NULL".to_owned(),
        "(thumbnail_settings IS NULL OR thumbnail_settings <> $2 OR preview_settings IS NULL \
          OR preview_settings <> $3)"
            .to_owned(),
    ];
    let mut next = 4;
    if filter.collection.is_some() {
        conditions.push(format!("collection = ${next}"));
        next += 1;
    }
    if after.is_some() {
        conditions.push(format!("(created_at, id) > (${next}, ${})", next + 1));
    }
    let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT id, status, original_path, created_at FROM image{} ORDER BY created_at, id LIMIT {limit}",
        where_clause(&conditions)
    )))
    .bind(filter.status.as_str())
    .bind(filter.thumbnail_settings)
    .bind(filter.preview_settings);
    if let Some(collection) = filter.collection {
        query = query.bind(collection);
    }
    if let Some(after) = after {
        query = query.bind(after.created_at.get()).bind(after.id.as_str());
    }
    let rows = query.fetch_all(pool).await?;
    Ok(rows
        .iter()
        .map(|row| {
            let id = ImageId::from(row.try_get::<String, _>("id")?);
            let status: String = row.try_get("status")?;
            Ok(OutdatedImage {
                status: status.parse().map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
                original_path: row.try_get("original_path")?,
                key: ImageKey { created_at: Millis(row.try_get("created_at")?), id: id.clone() },
                id,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?)
}

/// Changes title and/or collection (`Some(None)` clears the collection).
/// False when there is no such image.
///
/// # Errors
/// The database failed.
pub async fn update_details<'c, E: Executor<'c, Database = Any>>(
    exec: E,
    id: &ImageId,
    title: Option<&str>,
    collection: Option<Option<&str>>,
    now: Millis,
) -> DbResult<bool> {
    let done = sqlx::query(
        "UPDATE image SET title = COALESCE($1, title), \
                          collection = CASE WHEN $2 = 1 THEN $3 ELSE collection END, updated_at = $4 \
         WHERE id = $5",
    )
    .bind(title)
    .bind(i64::from(collection.is_some()))
    .bind(collection.flatten())
    .bind(now.get())
    .bind(id.as_str())
    .execute(exec)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes an image row; returns it, or `None` when there was none.
///
/// # Errors
/// The database failed.
pub async fn delete<'c, E: Executor<'c, Database = Any>>(exec: E, id: &ImageId) -> DbResult<Option<ImageRecord>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM image WHERE id = $1 RETURNING {COLUMNS}")))
        .bind(id.as_str())
        .fetch_optional(exec)
        .await?;
    Ok(row.as_ref().map(image_from_row).transpose()?)
}

/// How many images have the bytes of this checksum, whatever their state:
/// each needs the original stored under it, from its upload (the row is
/// committed before the upload is acknowledged, before its offload can
/// look for the original) until it is deleted.
///
/// # Errors
/// The database failed.
pub async fn count_with_checksum<'c, E: Executor<'c, Database = Any>>(exec: E, checksum: &str) -> DbResult<i64> {
    Ok(sqlx::query("SELECT COUNT(*) AS n FROM image WHERE checksum = $1")
        .bind(checksum)
        .fetch_one(exec)
        .await?
        .try_get("n")?)
}

/// Takes, inside the caller's write transaction, the lock of the original
/// with this checksum, held until the transaction ends. On SQLite the
/// transaction itself is the lock (`BEGIN IMMEDIATE` holds the database's
/// one write lock, across processes); on PostgreSQL a transaction-scoped
/// advisory lock keyed by the checksum's first 64 bits (a collision only
/// serialises two originals' decisions).
///
/// # Errors
/// The database failed.
pub async fn lock_original<'c, E: Executor<'c, Database = Any>>(
    exec: E,
    backend: Backend,
    checksum: &str,
) -> DbResult<()> {
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(original_lock_key(checksum)).execute(exec).await?;
    }
    Ok(())
}

/// The advisory lock key of an original: its checksum's first 16 hex
/// digits as a signed 64-bit number.
fn original_lock_key(checksum: &str) -> i64 {
    let prefix = checksum.get(..16).unwrap_or(checksum);
    i64::from_ne_bytes(u64::from_str_radix(prefix, 16).unwrap_or(0).to_ne_bytes())
}

/// Whether an image still needs the upload under `temp_key` (its offload
/// has not finished). Only images not STORED can: the offload's
/// completion clears `temp_path` as it records the original, which STORED
/// needs; so the status index narrows the search to images in flight.
///
/// # Errors
/// The database failed.
pub async fn uses_temp<'c, E: Executor<'c, Database = Any>>(exec: E, temp_key: &str) -> DbResult<bool> {
    let row = sqlx::query(
        "SELECT 1 AS used FROM image \
         WHERE status IN ('UPLOADED', 'INGESTED', 'PROCESSING', 'FAILED') AND temp_path = $1 LIMIT 1",
    )
    .bind(temp_key)
    .fetch_optional(exec)
    .await?;
    Ok(row.is_some())
}

/// DESIGN's STORED rule, the one place it is written: an image is complete
/// once it is PROCESSING with its original and every asset recorded
/// (whichever job finishes last).
macro_rules! complete_image {
    () => {
        "status = 'PROCESSING' AND original_path IS NOT NULL AND thumbnail_path IS NOT NULL \
         AND preview_path IS NOT NULL"
    };
}

/// An UPDATE that records part of an image, returning whether the image
/// is now [complete](complete_image) (the row after the update), so that a
/// completion asks for STORED ([`mark_stored_if_complete`]) only then.
macro_rules! returning_complete {
    ($update:literal) => {
        concat!($update, " RETURNING CAST(CASE WHEN ", complete_image!(), " THEN 1 ELSE 0 END AS BIGINT) AS complete")
    };
}

/// Runs a [`returning_complete`] UPDATE: `None` when there is no such
/// image (it was deleted).
async fn update_returning_complete<'c, E: Executor<'c, Database = Any>>(
    exec: E,
    query: sqlx::query::Query<'_, Any, sqlx::any::AnyArguments>,
) -> DbResult<Option<bool>> {
    match query.fetch_optional(exec).await? {
        Some(row) => Ok(Some(row.try_get::<i64, _>("complete")? == 1)),
        None => Ok(None),
    }
}

/// Records the offloaded original and moves the image to PROCESSING.
/// `Some(true)` when the image now has every asset too, `None` when there
/// is no such image.
///
/// # Errors
/// The database failed.
pub async fn set_original<'c, E: Executor<'c, Database = Any>>(
    exec: E,
    id: &ImageId,
    original_path: &str,
    now: Millis,
) -> DbResult<Option<bool>> {
    let query = sqlx::query(returning_complete!(
        "UPDATE image SET original_path = $1, temp_path = NULL, updated_at = $2, \
                          status = CASE WHEN status IN ('UPLOADED', 'INGESTED') THEN 'PROCESSING' ELSE status END \
         WHERE id = $3"
    ))
    .bind(original_path)
    .bind(now.get())
    .bind(id.as_str());
    update_returning_complete(exec, query).await
}

/// Records the thumbnails (`thumbnail_path` is the 256 px one, or the
/// largest when 256 was not made), the image's ThumbHash and what made
/// them (`settings`). `Some(true)`
/// when the image now has its original and every asset, `None` when there
/// is no such image.
///
/// # Errors
/// The database failed.
pub async fn set_thumbnails<'c, E: Executor<'c, Database = Any>>(
    exec: E,
    id: &ImageId,
    thumbnails: &BTreeMap<u32, String>,
    thumbhash: Option<&str>,
    settings: &str,
    now: Millis,
) -> DbResult<Option<bool>> {
    let main = thumbnails.get(&256).or_else(|| thumbnails.values().next_back());
    let json = serde_json::to_string(thumbnails).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let query = sqlx::query(returning_complete!(
        "UPDATE image SET thumbnail_path = $1, thumbnails = $2, thumbhash = $3, thumbnail_settings = $4, \
                          updated_at = $5 WHERE id = $6"
    ))
    .bind(main.map(String::as_str))
    .bind(json)
    .bind(thumbhash)
    .bind(settings)
    .bind(now.get())
    .bind(id.as_str());
    update_returning_complete(exec, query).await
}

/// Records the preview: its JPEG as `preview_path`, every encoding in
/// `previews`, and what made it (`settings`). `Some(true)` when the image now has its original and every
/// asset, `None` when there is no such image.
///
/// # Errors
/// The database failed.
pub async fn set_preview<'c, E: Executor<'c, Database = Any>>(
    exec: E,
    id: &ImageId,
    preview_path: &str,
    previews: &BTreeMap<String, String>,
    settings: &str,
    now: Millis,
) -> DbResult<Option<bool>> {
    let json = serde_json::to_string(previews).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let query = sqlx::query(returning_complete!(
        "UPDATE image SET preview_path = $1, previews = $2, preview_settings = $3, updated_at = $4 WHERE id = $5"
    ))
    .bind(preview_path)
    .bind(json)
    .bind(settings)
    .bind(now.get())
    .bind(id.as_str());
    update_returning_complete(exec, query).await
}

/// Sets the image STORED if the original and every asset exist (DESIGN's
/// rule: whichever job finishes last). True when it did.
///
/// # Errors
/// The database failed.
pub async fn mark_stored_if_complete<'c, E: Executor<'c, Database = Any>>(
    exec: E,
    id: &ImageId,
    now: Millis,
) -> DbResult<bool> {
    let done = sqlx::query(concat!(
        "UPDATE image SET status = 'STORED', last_error = NULL, updated_at = $1 WHERE id = $2 AND ",
        complete_image!()
    ))
    .bind(now.get())
    .bind(id.as_str())
    .execute(exec)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Sets the image FAILED with a message a person can act on.
///
/// # Errors
/// The database failed.
pub async fn mark_failed<'c, E: Executor<'c, Database = Any>>(
    exec: E,
    id: &ImageId,
    error: &str,
    now: Millis,
) -> DbResult<()> {
    sqlx::query("UPDATE image SET status = 'FAILED', last_error = $1, updated_at = $2 WHERE id = $3")
        .bind(error)
        .bind(now.get())
        .bind(id.as_str())
        .execute(exec)
        .await?;
    Ok(())
}

/// Puts a FAILED image back to PROCESSING (an operator retried its job).
///
/// # Errors
/// The database failed.
pub async fn mark_processing<'c, E: Executor<'c, Database = Any>>(exec: E, id: &ImageId, now: Millis) -> DbResult<()> {
    sqlx::query("UPDATE image SET status = 'PROCESSING', last_error = NULL, updated_at = $1 WHERE id = $2 AND status = 'FAILED'")
        .bind(now.get())
        .bind(id.as_str())
        .execute(exec)
        .await?;
    Ok(())
}

/// Every image changed after `since`, for the event stream's poll (one
/// query per tick, whatever changed).
///
/// # Errors
/// The database failed.
pub async fn changed_since(pool: &AnyPool, since: Millis) -> DbResult<Vec<ImageRecord>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM image WHERE updated_at > $1")))
        .bind(since.get())
        .fetch_all(pool)
        .await?;
    Ok(rows.iter().map(image_from_row).collect::<Result<_, _>>()?)
}

/// `(status, count)` of the images, for the metrics (from `image_count`).
///
/// # Errors
/// The database failed.
pub async fn counts_by_status(pool: &AnyPool) -> DbResult<Vec<(String, i64)>> {
    let rows = sqlx::query("SELECT status, CAST(SUM(n) AS BIGINT) AS n FROM image_count GROUP BY status")
        .fetch_all(pool)
        .await?;
    Ok(rows.iter().map(|r| Ok((r.try_get("status")?, r.try_get("n")?))).collect::<Result<_, sqlx::Error>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_originals_lock_key_is_its_checksums_first_64_bits() {
        assert_eq!(original_lock_key(&format!("{}{}", "00000000000000ff", "a".repeat(48))), 255);
        assert_eq!(original_lock_key(&"f".repeat(64)), -1);
        assert_eq!(original_lock_key("not hex"), 0);
    }
}
