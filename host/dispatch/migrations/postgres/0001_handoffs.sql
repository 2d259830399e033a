-- The handoff store on PostgreSQL: the same tables as the embedded SQLite
-- store, so both answer every query the same way. Times are Unix
-- milliseconds (BIGINT), as in SQLite, so a handoff reads back identical
-- from either.

CREATE TABLE decisions (
    seq BIGSERIAL PRIMARY KEY,
    item_id TEXT NOT NULL,
    tier TEXT NOT NULL,
    driver TEXT,
    reason_code TEXT NOT NULL,
    confidence DOUBLE PRECISION NOT NULL,
    at BIGINT NOT NULL,
    trigger TEXT
);
CREATE INDEX decisions_by_item ON decisions (item_id);

CREATE TABLE attempts (
    item_id TEXT PRIMARY KEY,
    count BIGINT NOT NULL,
    last_at BIGINT NOT NULL
);

CREATE TABLE handoffs (
    id TEXT PRIMARY KEY,
    item_id TEXT NOT NULL,
    tier TEXT NOT NULL,
    role TEXT NOT NULL,
    state TEXT NOT NULL,
    reason_code TEXT NOT NULL,
    driver TEXT,
    confidence DOUBLE PRECISION NOT NULL,
    created_at BIGINT NOT NULL,
    ack_deadline BIGINT NOT NULL,
    resolve_deadline BIGINT NOT NULL,
    lease_owner TEXT,
    lease_expires BIGINT,
    claims BIGINT NOT NULL DEFAULT 0,
    acked_at BIGINT,
    resolved_at BIGINT,
    resolution TEXT,
    escalations BIGINT NOT NULL DEFAULT 0,
    breached BOOLEAN NOT NULL DEFAULT FALSE,
    ack_breach_handled BOOLEAN NOT NULL DEFAULT FALSE,
    resolve_breach_handled BOOLEAN NOT NULL DEFAULT FALSE,
    payload TEXT NOT NULL
);
CREATE INDEX handoffs_by_role ON handoffs (role, state);
CREATE INDEX handoffs_by_item ON handoffs (item_id);
-- What the SLA clocks scan every tick: unresolved handoffs by deadline.
CREATE INDEX handoffs_open_by_deadline ON handoffs (ack_deadline, resolve_deadline)
    WHERE state <> 'resolved';

CREATE TABLE events (
    seq BIGSERIAL PRIMARY KEY,
    handoff TEXT NOT NULL,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX events_by_handoff ON events (handoff);

CREATE TABLE probe (
    id BIGINT PRIMARY KEY,
    at BIGINT NOT NULL
);

CREATE TABLE attempt_history (
    item_id TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    entry TEXT NOT NULL,
    PRIMARY KEY (item_id, attempt)
);

CREATE TABLE submissions (
    key TEXT PRIMARY KEY,
    item_id TEXT NOT NULL,
    answer TEXT NOT NULL,
    at BIGINT NOT NULL
);

CREATE TABLE audit_checkpoints (
    seq BIGINT PRIMARY KEY,
    line TEXT NOT NULL
);
