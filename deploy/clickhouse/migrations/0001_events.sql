-- Every session event, one row per envelope id.
-- ReplacingMergeTree keyed by (session_id, ts, id): a duplicate insert of an envelope has
-- the same key and is merged away; the recorder also skips ids already stored on redelivery.
CREATE TABLE IF NOT EXISTS stella.events
(
    id              UUID,
    session_id      String,
    type            LowCardinality(String),
    ts              DateTime64(6, 'UTC'),
    source_service  LowCardinality(String),
    source_instance String,
    seq             UInt64,
    trace           String,
    v               UInt16,
    role            LowCardinality(String),
    content         String,
    message_type    LowCardinality(String),
    is_chat         UInt8,
    envelope        String CODEC(ZSTD(3)),
    recorded_at     DateTime64(6, 'UTC') DEFAULT now64(6),
    payload         String ALIAS JSONExtractRaw(envelope, 'payload'),
    INDEX idx_id id TYPE bloom_filter GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (session_id, ts, id);
