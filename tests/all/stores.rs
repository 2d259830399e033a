//! The handoff stores the tests run on, both real: the embedded SQLite
//! store in a temporary directory, and the machine's PostgreSQL
//! (`HANDOFF_TEST_POSTGRES`, by default
//! `postgres://postgres@127.0.0.1:5432/test`), in a schema of the test's
//! own, so runs never see each other's data; the schema is dropped when the
//! test ends.

use std::sync::atomic::{AtomicU64, Ordering};

use handoff_dispatch::{Commit, Store, StoreLocation};
use sqlx::Connection;

/// Which store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The database the PostgreSQL tests make their schemas in.
pub fn postgres_url() -> String {
    std::env::var("HANDOFF_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A store of a test's own.
pub struct TestStore {
    /// The embedded store's home, kept for the test's life.
    _dir: tempfile::TempDir,
    location: StoreLocation,
    schema: Option<String>,
}

impl TestStore {
    pub async fn new(backend: Backend) -> TestStore {
        let dir = tempfile::tempdir().unwrap();
        match backend {
            Backend::Sqlite => TestStore {
                location: StoreLocation::Embedded(dir.path().to_path_buf()),
                _dir: dir,
                schema: None,
            },
            Backend::Postgres => {
                let schema = fresh_schema().await;
                // Named after the schema, so that dropping the store can
                // end every session the test left open.
                let url = format!(
                    "{}?options=-c%20search_path%3D{schema}&application_name={schema}",
                    postgres_url()
                );
                TestStore {
                    location: StoreLocation::Postgres(url),
                    _dir: dir,
                    schema: Some(schema),
                }
            }
        }
    }

    /// Where the store is, as `--store` or `HostConfig` take it.
    pub fn location(&self) -> &StoreLocation {
        &self.location
    }

    /// What `--store` says for this store (`sqlite` means the data
    /// directory's).
    pub fn spec(&self) -> String {
        match &self.location {
            StoreLocation::Embedded(_) => "sqlite".into(),
            StoreLocation::Postgres(url) => url.clone(),
        }
    }

    /// Opens the store: a second call is a second process sharing it.
    pub async fn open(&self) -> Store {
        Store::open(&self.location, Commit::Synced, "test")
            .await
            .unwrap_or_else(|e| panic!("cannot open the test store {}: {e}", self.location))
    }
}

/// Creates a schema no other test uses.
async fn fresh_schema() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let schema = format!(
        "handoff_test_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let mut admin = sqlx::PgConnection::connect(&postgres_url())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {} ({e}); start it with \
                 `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`",
                postgres_url()
            )
        });
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let _ = admin.close().await;
    schema
}

impl Drop for TestStore {
    fn drop(&mut self) {
        let Some(schema) = self.schema.take() else {
            return;
        };
        // Dropped on a thread of its own: this may run inside a runtime,
        // which cannot block on another. That runtime's tasks are stopped
        // while this blocks, so one of them may hold a transaction open
        // (an SLA sweep caught mid-way) that would keep the schema locked
        // forever: the test's own sessions are ended first.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&postgres_url()).await.ok()?;
                sqlx::query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE application_name = $1 AND pid <> pg_backend_pid()",
                )
                .bind(&schema)
                .execute(&mut admin)
                .await
                .ok()?;
                sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .execute(&mut admin)
                    .await
                    .ok()?;
                admin.close().await.ok()
            })
        });
        let _ = dropped.join();
    }
}

/// Declares a test that runs on each store: `on_both_stores!(#[attr] name)`
/// makes `name::sqlite` and `name::postgres`, each calling `name(Backend)`.
macro_rules! on_both_stores {
    ($(#[$attr:meta])* $name:ident) => {
        mod $name {
            use crate::stores::Backend;

            $(#[$attr])*
            async fn sqlite() {
                super::$name(Backend::Sqlite).await
            }

            $(#[$attr])*
            async fn postgres() {
                super::$name(Backend::Postgres).await
            }
        }
    };
}

pub(crate) use on_both_stores;
