//! Policy generations published to a fleet, in the PostgreSQL store every
//! node shares.
//!
//! `handoff publish` validates a policy directory and stores it here as a
//! new generation: each component once, by digest, and each unit's manifest.
//! Every node follows the newest generation (woken by a notification on
//! [`PUBLISHED`], and polling in case one was missed), validates it itself
//! and says here what it serves, or why it refused: [`Generations::nodes`]
//! is what `GET /v1/fleet` shows. Nothing here runs a plugin: these are
//! bytes and what nodes said about them.

use handoff_trust::MAX_SIGNATURE_FILE_BYTES;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::postgres::PgPool;
use sqlx::{Row, Transaction};
use tokio::sync::Notify;

use super::rows::{millis, time};
use super::store::StoreError;

/// The channel a publish is announced on.
pub const PUBLISHED: &str = "handoff_policies";

/// Serialises publishers, so generation numbers rise in commit order and a
/// follower that saw generation `n` never later finds an `n - 1` it missed.
const PUBLISH_LOCK: i64 = 0x70_75_62_6c_69_73_68; // "publish"

/// One plugin of a generation, as published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedUnit {
    /// The unit's name (its file name in a policy directory).
    pub name: String,
    /// The component.
    pub wasm: Vec<u8>,
    /// Its manifest, if it has one.
    pub manifest: Option<String>,
    /// Its signature file, if it has one: every node checks it against its
    /// own trust store.
    pub signatures: Option<String>,
}

/// A published file bigger than a node accepts: the node refuses the
/// generation without reading it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file} is {bytes} bytes, over this node's limit of {limit}")]
pub struct Oversized {
    /// The file, as a policy directory would name it.
    pub file: String,
    /// Its size.
    pub bytes: u64,
    /// The node's limit.
    pub limit: usize,
}

/// What a node last said about the generations it follows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeReport {
    /// The node's name.
    pub node: String,
    /// Where its API listens, as it said.
    pub address: Option<String>,
    /// When it last reported: a node that stopped reporting is down or cut
    /// off from the store.
    pub seen_at: DateTime<Utc>,
    /// The fleet generation it serves; `None` while it serves its own
    /// directory (nothing published yet, or nothing it accepted).
    pub serving: Option<u64>,
    /// Its own generation counter (every swap on the node counts), which
    /// its decisions record.
    pub local_generation: u64,
    /// The newest fleet generation it refused, if it refused one after
    /// what it serves.
    pub rejected: Option<RejectedGeneration>,
}

/// A generation a node refused, and why: it keeps serving what it served.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RejectedGeneration {
    /// The generation.
    pub generation: u64,
    /// Why, in the node's words.
    pub reason: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A published generation's summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GenerationSummary {
    /// Its number.
    pub generation: u64,
    /// When it was published.
    pub published_at: DateTime<Utc>,
    /// Who published it, as the publisher named itself.
    pub publisher: String,
    /// Its units, with each component's digest.
    pub units: Vec<UnitDigest>,
}

/// A unit of a generation, by digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitDigest {
    /// The unit's name.
    pub name: String,
    /// `sha256:<hex>` of its component, as the host names components.
    pub digest: String,
}

/// The fleet's published generations and what each node serves.
#[derive(Debug, Clone)]
pub struct Generations {
    pool: PgPool,
    published: Arc<Notify>,
}

impl Generations {
    pub(crate) fn new(pool: PgPool, published: Arc<Notify>) -> Generations {
        Generations { pool, published }
    }

    /// Woken when a generation is published (and when the store's listener
    /// reconnected, since one may have been missed). A hint: followers
    /// still poll.
    pub fn published(&self) -> &Arc<Notify> {
        &self.published
    }

    /// Stores `units` as the next generation and announces it. The caller
    /// has validated them; every node validates them again before serving.
    pub async fn publish(
        &self,
        units: &[PublishedUnit],
        publisher: &str,
        at: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut tx: Transaction<'_, sqlx::Postgres> = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(PUBLISH_LOCK)
            .execute(&mut *tx)
            .await?;
        let generation: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(generation), 0) + 1 FROM policy_generations")
                .fetch_one(&mut *tx)
                .await?;
        sqlx::query(
            "INSERT INTO policy_generations (generation, published_at, publisher) VALUES ($1, $2, $3)",
        )
        .bind(generation)
        .bind(millis(at))
        .bind(publisher)
        .execute(&mut *tx)
        .await?;
        for unit in units {
            let digest = format!("sha256:{}", hex::encode(Sha256::digest(&unit.wasm)));
            sqlx::query(
                "INSERT INTO policy_components (digest, wasm) VALUES ($1, $2)
                 ON CONFLICT (digest) DO NOTHING",
            )
            .bind(&digest)
            .bind(&unit.wasm)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO policy_units (generation, name, component, manifest, signatures)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(generation)
            .bind(&unit.name)
            .bind(&digest)
            .bind(&unit.manifest)
            .bind(&unit.signatures)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(PUBLISHED)
            .bind(generation.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(unsigned(generation))
    }

    /// The newest published generation, if any.
    pub async fn latest(&self) -> Result<Option<u64>, StoreError> {
        let latest: Option<i64> =
            sqlx::query_scalar("SELECT MAX(generation) FROM policy_generations")
                .fetch_one(&self.pool)
                .await?;
        Ok(latest.map(unsigned))
    }

    /// Generation `generation`'s units, components included, by name; or
    /// the first unit bigger than the reader accepts, whose bytes are then
    /// never copied out of the database (the store is shared, and trusted
    /// no more than a policy directory).
    pub async fn units(
        &self,
        generation: u64,
        max_component_bytes: usize,
        max_manifest_bytes: usize,
    ) -> Result<Result<Vec<PublishedUnit>, Oversized>, StoreError> {
        let max_component = i64::try_from(max_component_bytes).unwrap_or(i64::MAX);
        let max_manifest = i64::try_from(max_manifest_bytes).unwrap_or(i64::MAX);
        let sizes = sqlx::query(
            "SELECT u.name, octet_length(c.wasm) AS wasm_bytes,
                    COALESCE(octet_length(u.manifest), 0) AS manifest_bytes,
                    COALESCE(octet_length(u.signatures), 0) AS signature_bytes
               FROM policy_units u JOIN policy_components c ON c.digest = u.component
             WHERE u.generation = $1 AND (octet_length(c.wasm) > $2 OR octet_length(u.manifest) > $3
                                          OR octet_length(u.signatures) > $4)
             ORDER BY u.name LIMIT 1",
        )
        .bind(signed(generation))
        .bind(max_component)
        .bind(max_manifest)
        .bind(i64::try_from(MAX_SIGNATURE_FILE_BYTES).unwrap_or(i64::MAX))
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = sizes {
            let wasm: i64 = row.try_get("wasm_bytes")?;
            let manifest: i64 = row.try_get("manifest_bytes")?;
            let (file, bytes, limit) = if wasm > max_component {
                ("wasm", wasm, max_component_bytes)
            } else if manifest > max_manifest {
                ("toml", manifest, max_manifest_bytes)
            } else {
                let signatures: i64 = row.try_get("signature_bytes")?;
                ("sig", signatures, MAX_SIGNATURE_FILE_BYTES)
            };
            return Ok(Err(Oversized {
                file: format!("{}.{file}", row.try_get::<String, _>("name")?),
                bytes: unsigned(bytes),
                limit,
            }));
        }
        let rows = sqlx::query(
            "SELECT u.name, u.manifest, u.signatures, c.wasm FROM policy_units u
               JOIN policy_components c ON c.digest = u.component
             WHERE u.generation = $1 ORDER BY u.name",
        )
        .bind(signed(generation))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(PublishedUnit {
                    name: row.try_get("name")?,
                    wasm: row.try_get("wasm")?,
                    manifest: row.try_get("manifest")?,
                    signatures: row.try_get("signatures")?,
                })
            })
            .collect::<Result<_, StoreError>>()
            .map(Ok)
    }

    /// Generation `generation`'s summary, if it was published.
    pub async fn summary(&self, generation: u64) -> Result<Option<GenerationSummary>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT published_at, publisher FROM policy_generations WHERE generation = $1",
        )
        .bind(signed(generation))
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let units = sqlx::query(
            "SELECT name, component FROM policy_units WHERE generation = $1 ORDER BY name",
        )
        .bind(signed(generation))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|unit| {
            Ok(UnitDigest {
                name: unit.try_get("name")?,
                digest: unit.try_get("component")?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
        Ok(Some(GenerationSummary {
            generation,
            published_at: time(row.try_get("published_at")?),
            publisher: row.try_get("publisher")?,
            units,
        }))
    }

    /// Records what `report.node` serves now. A refusal is kept until the
    /// node serves that generation or a newer one.
    pub async fn report(&self, report: &NodeReport) -> Result<(), StoreError> {
        let rejected = report.rejected.as_ref();
        sqlx::query(
            "INSERT INTO fleet_nodes
                (node, address, seen_at, serving, local_generation, rejected, rejection, rejected_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (node) DO UPDATE SET
                address = EXCLUDED.address, seen_at = EXCLUDED.seen_at,
                serving = EXCLUDED.serving, local_generation = EXCLUDED.local_generation,
                rejected = EXCLUDED.rejected, rejection = EXCLUDED.rejection,
                rejected_at = EXCLUDED.rejected_at",
        )
        .bind(&report.node)
        .bind(&report.address)
        .bind(millis(report.seen_at))
        .bind(report.serving.map(signed))
        .bind(signed(report.local_generation))
        .bind(rejected.map(|r| signed(r.generation)))
        .bind(rejected.map(|r| r.reason.as_str()))
        .bind(rejected.map(|r| millis(r.at)))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every node that has reported, by name.
    pub async fn nodes(&self) -> Result<Vec<NodeReport>, StoreError> {
        let rows = sqlx::query(
            "SELECT node, address, seen_at, serving, local_generation, rejected, rejection, rejected_at
               FROM fleet_nodes ORDER BY node",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let rejected = match (
                    row.try_get::<Option<i64>, _>("rejected")?,
                    row.try_get::<Option<String>, _>("rejection")?,
                    row.try_get::<Option<i64>, _>("rejected_at")?,
                ) {
                    (Some(generation), Some(reason), Some(at)) => Some(RejectedGeneration {
                        generation: unsigned(generation),
                        reason,
                        at: time(at),
                    }),
                    _ => None,
                };
                Ok(NodeReport {
                    node: row.try_get("node")?,
                    address: row.try_get("address")?,
                    seen_at: time(row.try_get("seen_at")?),
                    serving: row.try_get::<Option<i64>, _>("serving")?.map(unsigned),
                    local_generation: unsigned(row.try_get("local_generation")?),
                    rejected,
                })
            })
            .collect()
    }
}

/// Generation numbers are positive `BIGINT`s in the database.
fn signed(generation: u64) -> i64 {
    i64::try_from(generation).unwrap_or(i64::MAX)
}

fn unsigned(generation: i64) -> u64 {
    u64::try_from(generation).unwrap_or(0)
}
