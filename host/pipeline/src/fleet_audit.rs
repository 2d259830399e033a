//! A fleet's audit trail read whole from the shared store: every node's
//! chain verified, and every node's records for compliance queries.
//!
//! A node's own audit file copies only its own chain; a compliance team
//! asks about the fleet, so `handoff audit verify --store` and `show
//! --store`, and `GET /v1/audit` on a node of a fleet, read here.

use handoff_audit::record::decode;
use handoff_audit::{Anchor, Entry, Verified, VerifyError, verify_node_chain};
use handoff_dispatch::{ChainHead, Ledger, StoreError};

/// Records read from the store per round.
const PAGE: u32 = 5_000;

/// One node's chain, and what verifying it found.
#[derive(Debug)]
pub struct NodeChain {
    /// The node, and the head its row names.
    pub head: ChainHead,
    /// What verifying its records against that head found.
    pub outcome: Result<Verified, VerifyError>,
}

/// Why the fleet's trail could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FleetAuditError {
    /// The store could not be read.
    #[error("cannot read the audit chains from the store: {0}")]
    Store(#[from] StoreError),
    /// A stored record is not a sound record.
    #[error(
        "record {seq} of node {node:?}'s chain is damaged: {reason}; run `handoff audit verify --store`"
    )]
    Damaged {
        /// The node.
        node: String,
        /// Its position in that node's chain.
        seq: u64,
        /// What is wrong.
        reason: String,
    },
}

/// Every line of `node`'s chain, in order.
async fn lines_of(ledger: &Ledger, node: &str) -> Result<Vec<String>, StoreError> {
    let mut lines = Vec::new();
    loop {
        let page = ledger.lines_after(node, lines.len() as u64, PAGE).await?;
        let full = page.len() == PAGE as usize;
        lines.extend(page);
        if !full {
            return Ok(lines);
        }
    }
}

/// Verifies every node's chain in the store: each from record 1 to the
/// head its row names, every record naming its node.
pub async fn verify_fleet(ledger: &Ledger) -> Result<Vec<NodeChain>, StoreError> {
    let mut chains = Vec::new();
    for head in ledger.heads().await? {
        let lines = lines_of(ledger, &head.node).await?;
        let anchor = Anchor {
            seq: head.seq,
            hash: head.hash.clone(),
        };
        let source = format!("node {:?} in the store", head.node);
        let outcome = verify_node_chain(&source, &head.node, &lines, &anchor);
        chains.push(NodeChain { head, outcome });
    }
    Ok(chains)
}

/// Every node's records, oldest first (by time, then node and position).
pub async fn fleet_entries(ledger: &Ledger) -> Result<Vec<Entry>, FleetAuditError> {
    let mut entries = Vec::new();
    for head in ledger.heads().await? {
        for (index, line) in lines_of(ledger, &head.node).await?.into_iter().enumerate() {
            let record = decode(&line).map_err(|error| FleetAuditError::Damaged {
                node: head.node.clone(),
                seq: index as u64 + 1,
                reason: error.to_string(),
            })?;
            entries.push(Entry { record, line });
        }
    }
    entries.sort_by(|a, b| {
        (a.record.ts, &a.record.node, a.record.seq).cmp(&(
            b.record.ts,
            &b.record.node,
            b.record.seq,
        ))
    });
    Ok(entries)
}
