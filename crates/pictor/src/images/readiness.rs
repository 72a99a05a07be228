//! Readiness: whether this process can do its work now (for `/readyz`).
//! The database answers, the storage can be written (checked at most once
//! per [`STORAGE_CHECK_TTL`], so probes cannot make it write on every
//! call), and the schema is the one this binary's migrations end at.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::Images;
use crate::clock::Millis;
use crate::db::SchemaStatus;

/// How long a storage check's result is reused.
pub const STORAGE_CHECK_TTL: Duration = Duration::from_secs(5);
/// Longest one check may take: a database that does not answer (stopped,
/// unreachable) would otherwise hold `/readyz` for the pool's 30 s wait,
/// and a probe gives up long before that.
pub const READINESS_CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// `work`'s result, or a failure saying it did not answer in time.
async fn bounded<T>(work: impl std::future::Future<Output = Result<T, String>>) -> Result<T, String> {
    tokio::time::timeout(READINESS_CHECK_TIMEOUT, work)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} s", READINESS_CHECK_TIMEOUT.as_secs())))
}

/// The last storage check: when, and its failure if any.
pub(super) type StorageCheckCache = Arc<tokio::sync::Mutex<Option<(Millis, Result<(), String>)>>>;

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Check {
    /// `database`, `storage` or `migrations`.
    #[schema(value_type = String)]
    pub name: &'static str,
    /// Whether it passed.
    pub ok: bool,
    /// Why it failed, or what it found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Every check, in a fixed order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// Whether every check passed.
    pub ready: bool,
    /// The checks.
    pub checks: Vec<Check>,
}

/// An error with its causes, `: `-separated (what an operator needs to act).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl Images {
    /// Runs the readiness checks.
    /// The checks run side by side, each within [`READINESS_CHECK_TIMEOUT`].
    pub async fn readiness(&self) -> Readiness {
        let (database, storage, migrations) = tokio::join!(
            bounded(async { self.db.ping().await.map_err(|e| error_chain(&e)) }),
            bounded(self.storage_writable()),
            bounded(async { self.db.schema_status().await.map_err(|e| error_chain(&e)) }),
        );
        let database = match database {
            Ok(()) => Check { name: "database", ok: true, detail: None },
            Err(why) => Check { name: "database", ok: false, detail: Some(why) },
        };
        let storage = match storage {
            Ok(()) => Check { name: "storage", ok: true, detail: None },
            Err(why) => Check { name: "storage", ok: false, detail: Some(why) },
        };
        let migrations = match migrations {
            Ok(status @ SchemaStatus::Current(_)) => {
                Check { name: "migrations", ok: true, detail: Some(status.to_string()) }
            }
            Ok(status) => Check { name: "migrations", ok: false, detail: Some(status.to_string()) },
            Err(why) => Check { name: "migrations", ok: false, detail: Some(why) },
        };
        let checks = vec![database, storage, migrations];
        for check in checks.iter().filter(|c| !c.ok) {
            tracing::warn!(check = check.name, detail = check.detail.as_deref(), "not ready");
        }
        Readiness { ready: checks.iter().all(|c| c.ok), checks }
    }

    /// The storage's writable check, reused for [`STORAGE_CHECK_TTL`] on
    /// the queue's clock; concurrent callers wait for one check.
    async fn storage_writable(&self) -> Result<(), String> {
        let mut last = self.storage_check.lock().await;
        let now = self.now();
        if let Some((at, result)) = last.as_ref()
            && now < at.after(STORAGE_CHECK_TTL)
            && now >= *at
        {
            return result.clone();
        }
        let result = self.storage.check_writable().await.map_err(|e| error_chain(&e));
        *last = Some((now, result.clone()));
        result
    }
}
