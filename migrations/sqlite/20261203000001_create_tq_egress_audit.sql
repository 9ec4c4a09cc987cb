-- The audit table in the embedded store. Same columns as PostgreSQL; ids are
-- the UUID's text form and times are UTC text 'YYYY-MM-DD HH:MM:SS.SSS', which
-- sorts in time order and works with SQLite's date functions.
CREATE TABLE IF NOT EXISTS tq_egress_audit (
    id                  TEXT PRIMARY KEY NOT NULL,
    bot_name            TEXT NOT NULL,
    group_name          TEXT,
    destination_url     TEXT NOT NULL,
    http_method         TEXT,
    status_code         INTEGER,
    request_size_bytes  INTEGER,
    response_size_bytes INTEGER,
    latency_ms          INTEGER,
    user_agent          TEXT,
    created_at          TEXT NOT NULL,
    destination_host    TEXT,
    client_ip           TEXT,
    proxy_user          TEXT,
    squid_status        TEXT,
    hierarchy           TEXT,
    content_type        TEXT,
    source              TEXT,
    ingested_at         TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS idx_egress_bot ON tq_egress_audit (bot_name, created_at, id);
CREATE INDEX IF NOT EXISTS idx_egress_time ON tq_egress_audit (created_at, id);
CREATE INDEX IF NOT EXISTS idx_egress_errors ON tq_egress_audit (bot_name, created_at, id)
    WHERE status_code >= 400;
CREATE INDEX IF NOT EXISTS idx_egress_dest ON tq_egress_audit (destination_host);
