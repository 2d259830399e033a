//! Every fleet node's audit chain, kept in the shared store.
//!
//! On PostgreSQL a node does not append a decision or a handoff event to
//! its audit file after the store commits the change: the record is
//! chained in the same transaction as the change (`audit_records`, under
//! the node's `audit_heads` row lock), so a change without its record, or
//! a record without its change, cannot exist. The node's audit file then
//! copies its chain from here, line for line. Each record names its node
//! (inside what its hash covers), and `handoff audit verify --store`
//! checks every node's chain from here.

use std::sync::Arc;

use chrono::Utc;
use sqlx::{PgPool, Postgres, QueryBuilder, Transaction};

use handoff_audit::record::{GENESIS, encode_as};

use super::store::StoreError;

/// Records per `INSERT`: far below PostgreSQL's 65,535 bind parameters.
const RECORDS_PER_STATEMENT: usize = 1_000;

/// One node's chain: where its newest record is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    /// The node.
    pub node: String,
    /// The last record's sequence number (0 before the first).
    pub seq: u64,
    /// Its hash.
    pub hash: String,
}

/// The chains in the store, and this node's place among them.
#[derive(Debug, Clone)]
pub struct Ledger {
    pool: PgPool,
    node: Arc<str>,
}

impl Ledger {
    pub(crate) fn new(pool: PgPool, node: &str) -> Self {
        Ledger {
            pool,
            node: node.into(),
        }
    }

    /// The node whose chain this host appends to.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Chains `bodies` (records serialized as JSON objects) to this node's
    /// chain inside `tx`. Call it last in the transaction, after any event
    /// appends: every transaction takes the event-order lock before the
    /// head row, never after, so two cannot wait for each other.
    pub(crate) async fn append(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        bodies: &[String],
    ) -> Result<(), StoreError> {
        if bodies.is_empty() {
            return Ok(());
        }
        // Creates the head on the node's first record, and locks it either
        // way: the node's appends queue here, one at a time.
        let (seq, mut prev): (i64, String) = sqlx::query_as(
            "INSERT INTO audit_heads (node, seq, hash) VALUES ($1, 0, $2)
             ON CONFLICT (node) DO UPDATE SET node = excluded.node
             RETURNING seq, hash",
        )
        .bind(&*self.node)
        .bind(GENESIS)
        .fetch_one(&mut **tx)
        .await?;
        let first = u64::try_from(seq).map_err(|_| StoreError::Corrupt {
            what: format!("audit_heads of node {}", self.node),
            detail: format!("a negative sequence number {seq}"),
        })? + 1;
        let now = Utc::now();
        let mut lines = Vec::with_capacity(bodies.len());
        for (offset, body) in bodies.iter().enumerate() {
            let seq = first + offset as u64;
            let (line, hash) = encode_as(Some(&self.node), seq, now, &prev, body);
            lines.push((seq as i64, line));
            prev = hash;
        }
        for chunk in lines.chunks(RECORDS_PER_STATEMENT) {
            let mut insert =
                QueryBuilder::<Postgres>::new("INSERT INTO audit_records (node, seq, line) ");
            insert.push_values(chunk, |mut values, (seq, line)| {
                values
                    .push_bind(&*self.node)
                    .push_bind(*seq)
                    .push_bind(line);
            });
            insert.build().execute(&mut **tx).await?;
        }
        let last = lines.last().map_or(seq, |(seq, _)| *seq);
        sqlx::query("UPDATE audit_heads SET seq = $2, hash = $3 WHERE node = $1")
            .bind(&*self.node)
            .bind(last)
            .bind(&prev)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Chains records that record no store change (a policy change), in a
    /// transaction of their own.
    pub async fn append_alone(&self, bodies: &[String]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        self.append(&mut tx, bodies).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every node's chain head, by node name.
    pub async fn heads(&self) -> Result<Vec<ChainHead>, StoreError> {
        let rows: Vec<(String, i64, String)> =
            sqlx::query_as("SELECT node, seq, hash FROM audit_heads ORDER BY node")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(node, seq, hash)| ChainHead {
                node,
                seq: u64::try_from(seq).unwrap_or(0),
                hash,
            })
            .collect())
    }

    /// Up to `limit` records of `node`'s chain after `after`, in order, as
    /// chained.
    pub async fn lines_after(
        &self,
        node: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT line FROM audit_records WHERE node = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(node)
        .bind(i64::try_from(after).unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }
}
