-- The audit table: one row per outbound call Squid logged.
-- Column names and meanings of the original design are kept; byte counts and
-- latency are 64-bit because Squid logs multi-gigabyte transfers and long tunnels.
CREATE TABLE IF NOT EXISTS tq_egress_audit (
    id                  uuid PRIMARY KEY,
    bot_name            varchar(64) NOT NULL,
    group_name          varchar(64),
    destination_url     text NOT NULL,
    http_method         varchar(10),
    status_code         integer,
    request_size_bytes  bigint,
    response_size_bytes bigint,
    latency_ms          bigint,
    user_agent          text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    destination_host    text,
    client_ip           text,
    proxy_user          text,
    squid_status        text,
    hierarchy           text,
    content_type        text,
    source              text,
    ingested_at         timestamptz NOT NULL DEFAULT now()
);

-- Per-bot trails newest first (`query recent BOT`, `stats BOT`). Queries order
-- by (created_at, id) so that ties come out the same every time; with id in
-- the index that order is read straight from it.
CREATE INDEX IF NOT EXISTS idx_egress_bot ON tq_egress_audit (bot_name, created_at, id);
-- Time ranges (`audit`, every window, `recent` without a bot).
CREATE INDEX IF NOT EXISTS idx_egress_time ON tq_egress_audit (created_at, id);
-- A bot's failures newest first (`query errors BOT`) without reading its
-- successes; only failed calls are indexed, so it costs little at load time.
CREATE INDEX IF NOT EXISTS idx_egress_errors ON tq_egress_audit (bot_name, created_at, id)
    WHERE status_code >= 400;
-- Top destinations group by host; a btree on the full URL costs far more at
-- load time than it saves (see BENCHMARKS.md).
CREATE INDEX IF NOT EXISTS idx_egress_dest ON tq_egress_audit (destination_host);
