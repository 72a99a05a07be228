//! The database: one connection pool over SQLite or PostgreSQL (sqlx's Any
//! driver), embedded migrations, and the queries of each table. SQL that must
//! differ between the backends is chosen through [`Backend`], nowhere else.

pub mod images;
pub mod jobs;
pub mod leases;

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use std::borrow::Cow;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Connection as _, Executor, SqlSafeStr};

/// A migration embedded in the binary: version, description, SQL.
type Embedded = (i64, &'static str, &'static str);

/// Migrations for each backend, in order. File names under `migrations/`
/// follow sqlx's `NNNN_description.sql`.
const SQLITE_MIGRATIONS: &[Embedded] = &[
    (1, "create image and job", include_str!("../../migrations/sqlite/0001_create_image_and_job.sql")),
    (2, "add image thumbhash", include_str!("../../migrations/sqlite/0002_add_image_thumbhash.sql")),
    (3, "narrow job indexes", include_str!("../../migrations/sqlite/0003_narrow_job_indexes.sql")),
    (4, "add image previews", include_str!("../../migrations/sqlite/0004_add_image_previews.sql")),
    (5, "image list indexes", include_str!("../../migrations/sqlite/0005_image_list_indexes.sql")),
    (6, "add job lease id", include_str!("../../migrations/sqlite/0006_add_job_lease_id.sql")),
    (7, "counts and scale indexes", include_str!("../../migrations/sqlite/0007_counts_and_scale_indexes.sql")),
    (8, "add image asset settings", include_str!("../../migrations/sqlite/0008_add_image_asset_settings.sql")),
];
const POSTGRES_MIGRATIONS: &[Embedded] = &[
    (1, "create image and job", include_str!("../../migrations/postgres/0001_create_image_and_job.sql")),
    (2, "add image thumbhash", include_str!("../../migrations/postgres/0002_add_image_thumbhash.sql")),
    (3, "narrow job indexes", include_str!("../../migrations/postgres/0003_narrow_job_indexes.sql")),
    (4, "add image previews", include_str!("../../migrations/postgres/0004_add_image_previews.sql")),
    (5, "image list indexes", include_str!("../../migrations/postgres/0005_image_list_indexes.sql")),
    (6, "add job lease id", include_str!("../../migrations/postgres/0006_add_job_lease_id.sql")),
    (7, "counts and scale indexes", include_str!("../../migrations/postgres/0007_counts_and_scale_indexes.sql")),
    (8, "add image asset settings", include_str!("../../migrations/postgres/0008_add_image_asset_settings.sql")),
];

/// The migrator of a backend (built at run time, so that sqlx's compile-time
/// macros and their build cost are not needed).
fn migrator(backend: Backend) -> Migrator {
    let embedded = match backend {
        Backend::Sqlite => SQLITE_MIGRATIONS,
        Backend::Postgres => POSTGRES_MIGRATIONS,
    };
    let migrations = embedded
        .iter()
        .map(|(version, description, sql)| {
            Migration::new(*version, Cow::Borrowed(*description), MigrationType::Simple, sql.into_sql_str(), false)
        })
        .collect::<Vec<_>>();
    Migrator { migrations: Cow::Owned(migrations), ..Migrator::DEFAULT }
}

/// The last embedded migration's version of a backend.
fn latest_version(backend: Backend) -> i64 {
    let embedded = match backend {
        Backend::Sqlite => SQLITE_MIGRATIONS,
        Backend::Postgres => POSTGRES_MIGRATIONS,
    };
    embedded.iter().map(|(version, _, _)| *version).max().unwrap_or(0)
}

/// The database's schema against the binary's migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaStatus {
    /// Applied up to the binary's latest version.
    Current(i64),
    /// Migrations of this binary are not applied yet (`pictor migrate`).
    Behind {
        /// Highest applied version.
        applied: i64,
        /// The binary's latest version.
        latest: i64,
    },
    /// A newer binary migrated the database further than this one knows.
    Ahead {
        /// Highest applied version.
        applied: i64,
        /// The binary's latest version.
        latest: i64,
    },
}

impl SchemaStatus {
    /// Compares an applied version with the binary's latest.
    pub fn of(applied: i64, latest: i64) -> Self {
        match applied.cmp(&latest) {
            std::cmp::Ordering::Equal => Self::Current(latest),
            std::cmp::Ordering::Less => Self::Behind { applied, latest },
            std::cmp::Ordering::Greater => Self::Ahead { applied, latest },
        }
    }
}

impl std::fmt::Display for SchemaStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Current(version) => write!(f, "schema version {version} is current"),
            Self::Behind { applied, latest } => {
                write!(f, "schema version {applied} is behind this binary's {latest}: run `pictor migrate`")
            }
            Self::Ahead { applied, latest } => {
                write!(f, "schema version {applied} is ahead of this binary's {latest}: a newer Pictor migrated it")
            }
        }
    }
}

/// How long a SQLite connection waits for the write lock before giving up.
const SQLITE_BUSY_TIMEOUT_MS: u64 = 30_000;
/// Pool size on PostgreSQL (SQLite writes are serialised anyway).
const POSTGRES_MAX_CONNECTIONS: u32 = 16;
const SQLITE_MAX_CONNECTIONS: u32 = 8;
/// A PostgreSQL connection idle in the pool at least this long is pinged
/// before it is handed out. One used more recently passed the pool's ping
/// when it came back (sqlx pings every connection returned); skipping the
/// second ping saves a round trip per checkout under load. If the server
/// dropped it since, its first statement fails (the caller's error path:
/// a job's ending is written again, an upload answers 5xx) and the pool
/// closes it when it comes back.
pub const PING_IDLE_AFTER: Duration = Duration::from_secs(1);

/// Which database a URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file (the embedded default).
    Sqlite,
    /// A PostgreSQL server, shared by any number of processes.
    Postgres,
}

/// Errors opening or migrating the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL names no supported database.
    #[error("unsupported DATABASE_URL {0:?}: use sqlite:PATH, sqlite://ABS/PATH or postgres://...")]
    UnsupportedUrl(String),
    /// The SQLite file's folder could not be created.
    #[error("cannot create the folder for the SQLite database {path}")]
    CreateDir {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Connecting failed.
    #[error("cannot connect to the database")]
    Connect(#[source] sqlx::Error),
    /// A migration failed.
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("database query failed: {0}")]
    Query(#[from] sqlx::Error),
}

/// The result of a query.
pub type DbResult<T> = Result<T, DbError>;

/// How SQLite syncs commits to disk (PostgreSQL ignores it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SqliteSynchronous {
    /// Every acknowledged write survives power loss (DESIGN invariant 1):
    /// an upload, an operator's action. The queue's bookkeeping commits
    /// without a sync ([`Durability::Bookkeeping`]). The default.
    #[default]
    Full,
    /// No commit waits for a sync: commits survive a crash of Pictor, but
    /// the last ones, acknowledged uploads included, may be lost on power
    /// loss.
    Normal,
}

/// What a write must survive, and so whether its commit waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Someone is told it happened (an upload answered 201, an operator's
    /// retry, cancel, edit or delete): synced before the commit returns.
    Acknowledged,
    /// The queue's own bookkeeping (claims, completions, lease renewals,
    /// rescues, pruning). It survives a crash of Pictor; a power cut may
    /// lose the last ones, and their jobs then simply run again: handlers
    /// are idempotent and sync their files before the completion commits
    /// (DESIGN invariants 2 and 3), and SQLite's WAL keeps the commits in
    /// order, so a lost one takes every later one with it. On PostgreSQL
    /// its transactions and the claim run with `synchronous_commit = off`
    /// (the same guarantees: the WAL is replayed in order).
    Bookkeeping,
}

/// What the SQLite writer connection's `synchronous` is known to be.
const WRITER_SYNC_UNKNOWN: u8 = 0;
const WRITER_SYNC_FULL: u8 = 1;
const WRITER_SYNC_NORMAL: u8 = 2;

impl SqliteSynchronous {
    fn pragma(self) -> &'static str {
        match self {
            Self::Full => "FULL",
            Self::Normal => "NORMAL",
        }
    }

    /// How `Db::writer_sync` records this setting.
    fn writer_sync(self) -> u8 {
        match self {
            Self::Full => WRITER_SYNC_FULL,
            Self::Normal => WRITER_SYNC_NORMAL,
        }
    }
}

impl std::str::FromStr for SqliteSynchronous {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "full" => Ok(Self::Full),
            "normal" => Ok(Self::Normal),
            _ => Err(format!("{s:?} is not full or normal")),
        }
    }
}

/// A pool of `max_connections` on `url`, each connection set up for Pictor.
/// `writer_sync`, for the SQLite writer's pool: a new connection's
/// `synchronous` is set by its first writer ([`Db::write_connection`]).
async fn open_pool(
    backend: Backend,
    url: &str,
    max_connections: u32,
    synchronous: SqliteSynchronous,
    writer_sync: Option<Arc<AtomicU8>>,
) -> Result<AnyPool, DbError> {
    AnyPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(30))
        // In place of sqlx's ping at every checkout: SQLite's connections
        // are files (nothing to lose), PostgreSQL's are pinged once idle.
        .test_before_acquire(false)
        .before_acquire(move |conn, meta| {
            Box::pin(async move {
                if backend == Backend::Postgres && meta.idle_for >= PING_IDLE_AFTER {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .after_connect(move |conn, _meta| {
            let writer_sync = writer_sync.clone();
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    // WAL lets readers run beside the single writer; FULL
                    // (the default) makes every acknowledged commit
                    // survive power loss (DESIGN invariant 1).
                    conn.execute(sqlx::AssertSqlSafe(format!(
                        "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; PRAGMA synchronous = {};",
                        synchronous.pragma()
                    )))
                    .await?;
                    if let Some(known) = writer_sync {
                        known.store(WRITER_SYNC_UNKNOWN, Ordering::Release);
                    }
                }
                Ok(())
            })
        })
        .connect(url)
        .await
        .map_err(DbError::Connect)
}

/// The pools and which backend they talk to.
#[derive(Clone, Debug)]
pub struct Db {
    /// The connection pool, for reads (and writes on PostgreSQL).
    pub pool: AnyPool,
    /// Where writes go ([`Db::write_connection`], [`Db::begin_write`]). On
    /// SQLite, one connection: SQLite runs one writer at a time anyway, and
    /// writers then queue here in order instead of polling for the file's
    /// lock in SQLite's busy handler, which sleeps up to 100 ms between
    /// tries and left the CPUs idle under a burst of uploads. On
    /// PostgreSQL, the pool itself.
    writer: AnyPool,
    /// The SQLite writer's `synchronous` as last set (`WRITER_SYNC_*`).
    writer_sync: Arc<AtomicU8>,
    /// What `SqliteSynchronous` the service was configured with.
    synchronous: SqliteSynchronous,
    /// The backend behind the pool.
    pub backend: Backend,
    /// The URL it was opened with (PostgreSQL's listener opens its own connection).
    url: String,
}

/// An image's id (the `image.id` column, and `job.image_id`): a UUID v7 that
/// Pictor makes; an id a client sends is only ever a value to look up.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct ImageId(String);

impl ImageId {
    /// A fresh id, ordered by creation time.
    pub fn new_v7() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    /// The id's text, as bound to SQL and shown in the API.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for ImageId {
    fn from(id: String) -> Self {
        Self(id)
    }
}

impl From<&str> for ImageId {
    fn from(id: &str) -> Self {
        Self(id.to_owned())
    }
}

impl std::ops::Deref for ImageId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ImageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which rows of a list to read, newest first: those after `after` (the
/// key of the last row of the page before, a keyset cursor), skipping
/// `offset` of them, at most `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window<K> {
    /// The key the page starts after; `None` from the newest.
    pub after: Option<K>,
    /// Most rows.
    pub limit: i64,
    /// Rows skipped (after `after`).
    pub offset: i64,
}

/// A page of a list, how many rows match in all, and whether more follow.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed<T> {
    /// The page, newest first.
    pub rows: Vec<T>,
    /// Rows matching the filters in all.
    pub total: i64,
    /// True when rows follow the page.
    pub has_more: bool,
}

/// How a [`Window`] is read: newest first with one row more than asked
/// (which says whether more follow), or, for an offset past the middle of
/// the list without a cursor, oldest first from the other end with the
/// mirrored offset, reversed afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Plan {
    /// Reading oldest first (the mirrored offset).
    from_oldest: bool,
    /// Rows the page wants.
    wanted: i64,
    /// `LIMIT` of the statement.
    limit: i64,
    /// `OFFSET` of the statement.
    offset: i64,
}

impl<K> Window<K> {
    /// How to read this window of a list of `total` rows.
    fn plan(&self, total: i64) -> Plan {
        let wanted = self.limit.max(0);
        if self.after.is_none() && self.offset > 0 && self.offset.saturating_mul(2) > total {
            let end = total.saturating_sub(self.offset).max(0);
            let start = end.saturating_sub(wanted).max(0);
            return Plan { from_oldest: true, wanted, limit: end - start, offset: start };
        }
        Plan { from_oldest: false, wanted, limit: wanted.saturating_add(1), offset: self.offset.max(0) }
    }
}

impl Plan {
    /// `newest` for a newest-first read, else `oldest`.
    fn order<'a>(&self, newest: &'a str, oldest: &'a str) -> &'a str {
        if self.from_oldest { oldest } else { newest }
    }

    /// The page from the rows read.
    fn listed<T>(&self, mut rows: Vec<T>, total: i64) -> Listed<T> {
        let has_more = if self.from_oldest {
            rows.reverse();
            self.offset > 0
        } else {
            let more = i64::try_from(rows.len()).unwrap_or(i64::MAX) > self.wanted;
            rows.truncate(usize::try_from(self.wanted).unwrap_or(0));
            more
        };
        Listed { rows, total, has_more }
    }
}

/// ` WHERE a AND b` of some conditions, `""` for none.
fn where_clause(conditions: &[String]) -> String {
    if conditions.is_empty() { String::new() } else { format!(" WHERE {}", conditions.join(" AND ")) }
}

/// A write transaction, as [`Db::begin_write`] opens it (`'static`: on a
/// connection of its own) or [`Db::begin_write_on`] (on one the caller holds).
pub type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;

impl Db {
    /// Opens a pool on `url` (creating a SQLite file and its folder if
    /// missing). Does not migrate.
    ///
    /// # Errors
    /// An unsupported URL, an uncreatable folder, or a failed connection.
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        Self::connect_with(url, SqliteSynchronous::default()).await
    }

    /// [`Db::connect`] with SQLite's commit durability chosen.
    ///
    /// # Errors
    /// As [`Db::connect`].
    pub async fn connect_with(url: &str, synchronous: SqliteSynchronous) -> Result<Self, DbError> {
        install_default_drivers();
        let (backend, url) = normalise_url(url)?;
        let max_connections = match backend {
            Backend::Sqlite => SQLITE_MAX_CONNECTIONS,
            Backend::Postgres => POSTGRES_MAX_CONNECTIONS,
        };
        let pool = open_pool(backend, &url, max_connections, synchronous, None).await?;
        let writer_sync = Arc::new(AtomicU8::new(WRITER_SYNC_UNKNOWN));
        let writer = match backend {
            Backend::Sqlite => {
                // Persistent in the file: set once, before other connections exist.
                pool.execute("PRAGMA journal_mode = WAL").await.map_err(DbError::Connect)?;
                open_pool(backend, &url, 1, synchronous, Some(writer_sync.clone())).await?
            }
            Backend::Postgres => pool.clone(),
        };
        Ok(Self { pool, writer, writer_sync, synchronous, backend, url })
    }

    /// Applies the embedded migrations and returns the schema version.
    ///
    /// # Errors
    /// A migration that fails or that does not match what was applied before.
    pub async fn migrate(&self) -> Result<i64, DbError> {
        let migrator = migrator(self.backend);
        migrator.run(&self.pool).await?;
        Ok(migrator.iter().map(|m| m.version).max().unwrap_or(0))
    }

    /// The schema version this binary's embedded migrations end at.
    pub fn latest_version(&self) -> i64 {
        latest_version(self.backend)
    }

    /// How the database's applied migrations compare with the binary's
    /// (for `/readyz`): the highest successfully applied version against
    /// [`Db::latest_version`].
    ///
    /// # Errors
    /// The database could not be read (or was never migrated).
    pub async fn schema_status(&self) -> DbResult<SchemaStatus> {
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success").fetch_one(&self.pool).await?;
        Ok(SchemaStatus::of(applied.unwrap_or(0), self.latest_version()))
    }

    /// A connection for writes whose commits are as durable as `durability`
    /// asks. On SQLite, the one writer connection, its `synchronous` set
    /// when it differs (one statement, only when the kind of write changes).
    ///
    /// # Errors
    /// The database could not be reached.
    pub async fn write_connection(&self, durability: Durability) -> DbResult<PoolConnection<Any>> {
        let mut conn = self.writer.acquire().await?;
        if self.backend == Backend::Sqlite {
            let wanted = match (durability, self.synchronous) {
                (Durability::Acknowledged, SqliteSynchronous::Full) => SqliteSynchronous::Full,
                _ => SqliteSynchronous::Normal,
            };
            if self.writer_sync.load(Ordering::Acquire) != wanted.writer_sync() {
                // Unknown until the pragma is known to have run (a dropped
                // future leaves it unknown, so the next writer sets it).
                self.writer_sync.store(WRITER_SYNC_UNKNOWN, Ordering::Release);
                conn.execute(sqlx::AssertSqlSafe(format!("PRAGMA synchronous = {}", wanted.pragma()))).await?;
                self.writer_sync.store(wanted.writer_sync(), Ordering::Release);
            }
        }
        Ok(conn)
    }

    /// Begins a transaction that will write, as durable as `durability`
    /// asks. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`),
    /// so that it waits for the lock instead of failing when a read turns
    /// into a write.
    ///
    /// # Errors
    /// The database could not be reached.
    pub async fn begin_write(&self, durability: Durability) -> DbResult<Tx<'static>> {
        let conn = self.write_connection(durability).await?;
        // What `Pool::begin_with` does, on a connection prepared above.
        Ok(sqlx::Transaction::begin(conn, self.begin_statement(durability)).await?)
    }

    /// [`Db::begin_write`] on a write connection the caller holds (where
    /// [`Db::may_hold_writer`]), which it keeps when the transaction ends:
    /// no checkout, so none of the pool's pings before and after.
    ///
    /// # Errors
    /// The database could not be reached (the caller should then let the
    /// connection go: its state is unknown).
    pub async fn begin_write_on<'c>(&self, conn: &'c mut AnyConnection, durability: Durability) -> DbResult<Tx<'c>> {
        Ok(sqlx::Transaction::begin(conn, self.begin_statement(durability)).await?)
    }

    /// The statement that begins a write transaction (`None`: sqlx's `BEGIN`).
    fn begin_statement(&self, durability: Durability) -> Option<sqlx::SqlStr> {
        match (self.backend, durability) {
            (Backend::Sqlite, _) => Some("BEGIN IMMEDIATE".into_sql_str()),
            // Both in one round trip (a simple query may hold several statements).
            (Backend::Postgres, Durability::Bookkeeping) => {
                Some("BEGIN; SET LOCAL synchronous_commit = off".into_sql_str())
            }
            (Backend::Postgres, Durability::Acknowledged) => None,
        }
    }

    /// Whether a task may keep a write connection for itself (as the
    /// runner's claims and completions do, to save the pool's checks): not
    /// on SQLite, whose one writer connection everyone shares.
    pub fn may_hold_writer(&self) -> bool {
        self.backend == Backend::Postgres
    }

    /// The URL the pool was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Answers whether the database is reachable.
    ///
    /// # Errors
    /// It is not.
    pub async fn ping(&self) -> DbResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// Turns a user's `DATABASE_URL` into one sqlx understands, creating a SQLite
/// file's folder.
fn normalise_url(url: &str) -> Result<(Backend, String), DbError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((Backend::Postgres, url.to_owned()));
    }
    let Some(rest) = url.strip_prefix("sqlite:") else {
        return Err(DbError::UnsupportedUrl(url.to_owned()));
    };
    // `sqlite://ABS/PATH` (so `sqlite:///tmp/x.db`) and `sqlite:REL/PATH`.
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" {
        return Err(DbError::UnsupportedUrl(url.to_owned()));
    }
    if let Some(parent) = Path::new(path).parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| DbError::CreateDir { path: parent.to_owned(), source })?;
    }
    let query = if query.contains("mode=") {
        query.to_owned()
    } else if query.is_empty() {
        "mode=rwc".to_owned()
    } else {
        format!("{query}&mode=rwc")
    };
    Ok((Backend::Sqlite, format!("sqlite://{path}?{query}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The embedded list against the files of each backend's folder: every
    /// file listed once, in order, with the description its name gives, and
    /// both backends at the same versions.
    #[test]
    fn the_migration_lists_match_the_files_of_both_backends() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut versions = Vec::new();
        for (folder, embedded) in [("sqlite", SQLITE_MIGRATIONS), ("postgres", POSTGRES_MIGRATIONS)] {
            let mut files: Vec<(i64, String, String)> = std::fs::read_dir(root.join(folder))
                .expect("migrations folder")
                .map(|entry| {
                    let path = entry.expect("entry").path();
                    let name = path.file_stem().expect("name").to_string_lossy().into_owned();
                    let (number, words) = name.split_once('_').expect("NNNN_description.sql");
                    let sql = std::fs::read_to_string(&path).expect("read");
                    (number.parse().expect("a version number"), words.replace('_', " "), sql)
                })
                .collect();
            files.sort();
            let listed: Vec<(i64, String, String)> =
                embedded.iter().map(|(v, d, sql)| (*v, (*d).to_owned(), (*sql).to_owned())).collect();
            assert_eq!(listed, files, "the {folder} list in db/mod.rs differs from migrations/{folder}/");
            assert!(files.iter().enumerate().all(|(i, f)| f.0 == i as i64 + 1), "{folder}: versions 1, 2, 3…");
            versions.push(files.iter().map(|f| (f.0, f.1.clone())).collect::<Vec<_>>());
        }
        assert_eq!(versions[0], versions[1], "both backends have the same migrations");
    }

    #[test]
    fn sqlite_urls_with_relative_and_absolute_paths_are_accepted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let abs = dir.path().join("a/b.db");
        let (backend, url) = normalise_url(&format!("sqlite://{}", abs.display())).expect("absolute");
        assert_eq!(backend, Backend::Sqlite);
        assert_eq!(url, format!("sqlite://{}?mode=rwc", abs.display()));
        assert!(abs.parent().is_some_and(Path::is_dir), "the folder is created");

        let (_, url) = normalise_url("sqlite:rel/x.db?mode=ro").expect("relative");
        assert_eq!(url, "sqlite://rel/x.db?mode=ro");
        let _ = std::fs::remove_dir_all("rel");
    }

    async fn synchronous_of(conn: &mut sqlx::AnyConnection) -> i64 {
        sqlx::query_scalar("PRAGMA synchronous").fetch_one(conn).await.expect("pragma")
    }

    #[tokio::test]
    async fn sqlite_syncs_acknowledged_commits_and_not_the_queues_bookkeeping() {
        const NORMAL: i64 = 1;
        const FULL: i64 = 2;
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("p.db").display());
        let db = Db::connect(&url).await.expect("connect");
        let mut bookkeeping = db.write_connection(Durability::Bookkeeping).await.expect("writer");
        assert_eq!(synchronous_of(&mut bookkeeping).await, NORMAL);
        drop(bookkeeping);
        let mut acknowledged = db.begin_write(Durability::Acknowledged).await.expect("begin");
        assert_eq!(synchronous_of(&mut acknowledged).await, FULL);
        acknowledged.rollback().await.expect("rollback");
        let mut bookkeeping = db.begin_write(Durability::Bookkeeping).await.expect("begin");
        assert_eq!(synchronous_of(&mut bookkeeping).await, NORMAL, "switched back");
        bookkeeping.rollback().await.expect("rollback");

        let relaxed = Db::connect_with(&url, SqliteSynchronous::Normal).await.expect("connect");
        let mut acknowledged = relaxed.write_connection(Durability::Acknowledged).await.expect("writer");
        assert_eq!(synchronous_of(&mut acknowledged).await, NORMAL, "PICTOR_SQLITE_SYNCHRONOUS=normal syncs nothing");
    }

    #[test]
    fn offsets_past_the_middle_are_read_from_the_oldest_end() {
        let window = |offset| Window::<i64> { after: None, limit: 10, offset };
        assert_eq!(window(0).plan(100), Plan { from_oldest: false, wanted: 10, limit: 11, offset: 0 });
        assert_eq!(window(40).plan(100), Plan { from_oldest: false, wanted: 10, limit: 11, offset: 40 });
        // Rows 60..70 newest first are rows 30..40 oldest first.
        assert_eq!(window(60).plan(100), Plan { from_oldest: true, wanted: 10, limit: 10, offset: 30 });
        // The last, partial page and a page past the end.
        assert_eq!(window(95).plan(100), Plan { from_oldest: true, wanted: 10, limit: 5, offset: 0 });
        assert_eq!(window(120).plan(100), Plan { from_oldest: true, wanted: 10, limit: 0, offset: 0 });
        let after = Window { after: Some(5_i64), limit: 10, offset: 60 };
        assert!(!after.plan(100).from_oldest, "a cursor's page is read from its cursor");

        let reversed = window(60).plan(100).listed(vec![30, 31, 32], 100);
        assert_eq!((reversed.rows, reversed.has_more), (vec![32, 31, 30], true));
        let last = window(95).plan(100).listed(vec![0, 1], 100);
        assert!(!last.has_more);
        let first = window(0).plan(100).listed((0..11).collect(), 100);
        assert_eq!((first.rows.len(), first.has_more), (10, true));
    }

    #[test]
    fn unknown_schemes_are_refused_with_a_hint() {
        let err = normalise_url("mysql://x").expect_err("refused");
        assert!(err.to_string().contains("postgres://"));
    }
}
