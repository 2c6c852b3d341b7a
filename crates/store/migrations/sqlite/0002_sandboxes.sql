-- Sandboxes, their metadata labels, and persistent volumes.
-- Keep in step with ../postgres/0002_sandboxes.sql.

CREATE TABLE sandboxes (
    id             TEXT PRIMARY KEY,
    environment_id TEXT NOT NULL REFERENCES environments (id),
    -- The server node (host name) whose backend runs the sandbox.
    host           TEXT NOT NULL,
    template       TEXT NOT NULL,
    isolation      TEXT NOT NULL,
    state          TEXT NOT NULL,
    error          TEXT,
    -- JSON: what the sandbox was created with (limits, network, env, volumes, on_timeout, token).
    spec           TEXT NOT NULL,
    timeout_at     BIGINT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);

CREATE INDEX sandboxes_by_environment ON sandboxes (environment_id, id);
CREATE INDEX sandboxes_by_host ON sandboxes (host, state);
CREATE INDEX sandboxes_by_timeout ON sandboxes (timeout_at);

CREATE TABLE sandbox_metadata (
    sandbox_id TEXT NOT NULL REFERENCES sandboxes (id) ON DELETE CASCADE,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (sandbox_id, key)
);

CREATE INDEX sandbox_metadata_by_pair ON sandbox_metadata (key, value);

CREATE TABLE volumes (
    id             TEXT PRIMARY KEY,
    environment_id TEXT NOT NULL REFERENCES environments (id),
    name           TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    UNIQUE (environment_id, name)
);
