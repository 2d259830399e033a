-- Fleet-wide policy rollout: `handoff publish` stores a validated policy set
-- as a new generation, and every node follows the newest one.

-- Components by SHA-256 digest: a component unchanged between generations
-- is stored once.
CREATE TABLE policy_components (
    digest TEXT PRIMARY KEY,
    wasm BYTEA NOT NULL
);

-- One row per published generation. Numbers are handed out under an
-- advisory lock, one publisher at a time, so they rise in commit order.
CREATE TABLE policy_generations (
    generation BIGINT PRIMARY KEY,
    published_at BIGINT NOT NULL,
    publisher TEXT NOT NULL
);

-- The units of a generation: each plugin's component and its manifest.
CREATE TABLE policy_units (
    generation BIGINT NOT NULL REFERENCES policy_generations (generation),
    name TEXT NOT NULL,
    component TEXT NOT NULL REFERENCES policy_components (digest),
    manifest TEXT,
    PRIMARY KEY (generation, name)
);

-- What each node serves, as it last said: the fleet generation it serves
-- (NULL: its own directory, before any publish), and the newest generation
-- it refused, with why.
CREATE TABLE fleet_nodes (
    node TEXT PRIMARY KEY,
    address TEXT,
    seen_at BIGINT NOT NULL,
    serving BIGINT,
    local_generation BIGINT NOT NULL,
    rejected BIGINT,
    rejection TEXT,
    rejected_at BIGINT
);
