-- Every node's audit chain, in the shared store. Each record is appended
-- in the same transaction as the state change it records (a decision's
-- row, a handoff's event), so the two can never diverge; the head row,
-- locked by every append, keeps one node's records in one order.

CREATE TABLE audit_heads (
    node TEXT PRIMARY KEY,
    -- The last record's sequence number (0 before the first) and hash.
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);

CREATE TABLE audit_records (
    node TEXT NOT NULL,
    seq BIGINT NOT NULL,
    -- The record exactly as chained: its hash covers these bytes.
    line TEXT NOT NULL,
    PRIMARY KEY (node, seq)
);
