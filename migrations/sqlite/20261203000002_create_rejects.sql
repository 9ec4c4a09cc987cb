-- Dead letters: lines that did not parse and rows the database refused.
CREATE TABLE IF NOT EXISTS tq_egress_audit_rejects (
    id          TEXT PRIMARY KEY NOT NULL,
    source      TEXT,
    file        TEXT,
    fingerprint INTEGER,
    byte_offset INTEGER,
    raw_line    BLOB NOT NULL,
    reason      TEXT NOT NULL,
    stage       TEXT NOT NULL,
    rejected_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS idx_egress_rejects_time ON tq_egress_audit_rejects (rejected_at);
