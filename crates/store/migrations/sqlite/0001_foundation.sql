-- Foundation schema: installation facts, the workspace, its environments, API keys and secrets.
-- Times are Unix milliseconds (BIGINT) so both engines store them identically.
-- Keep in step with ../postgres/0001_foundation.sql: the two differ only in column types.

CREATE TABLE installation (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE workspaces (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE environments (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    kind         TEXT NOT NULL CHECK (kind IN ('development', 'production')),
    name         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    UNIQUE (workspace_id, kind)
);

CREATE TABLE api_keys (
    id             TEXT PRIMARY KEY,
    workspace_id   TEXT NOT NULL REFERENCES workspaces (id),
    environment_id TEXT REFERENCES environments (id),
    kind           TEXT NOT NULL CHECK (kind IN ('admin', 'development', 'production')),
    name           TEXT NOT NULL,
    secret_hash    BLOB NOT NULL UNIQUE,
    last4          TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    last_used_at   BIGINT,
    revoked_at     BIGINT,
    CHECK ((kind = 'admin') = (environment_id IS NULL))
);

CREATE TABLE secrets (
    id             TEXT PRIMARY KEY,
    environment_id TEXT NOT NULL REFERENCES environments (id),
    name           TEXT NOT NULL,
    nonce          BLOB NOT NULL,
    ciphertext     BLOB NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    UNIQUE (environment_id, name)
);
