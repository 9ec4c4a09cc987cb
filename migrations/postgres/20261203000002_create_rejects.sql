-- Dead letters: lines that did not parse and rows the database refused, kept
-- with where they came from and why, so that nothing is dropped silently and
-- an operator can inspect and replay them (`egress-audit rejects`).
CREATE TABLE IF NOT EXISTS tq_egress_audit_rejects (
    id          uuid PRIMARY KEY,
    source      text,
    file        text,
    fingerprint bigint,
    byte_offset bigint,
    raw_line    bytea NOT NULL,
    reason      text NOT NULL,
    stage       text NOT NULL,
    rejected_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS idx_egress_rejects_time ON tq_egress_audit_rejects (rejected_at);
