-- edgebench fleet store, schema version 2: telemetry time series and rejects.

-- <prefix>/<device>/telemetry: a few typed columns Grafana panels use most, every
-- other key (temp_c_<zone>, freq_mhz_cpu<N>, power_w_<rail>...) in `extra`.
-- Rows older than [collect] telemetry_retention_days are deleted by the collector.
CREATE TABLE telemetry (
    device_id TEXT NOT NULL,
    ts BIGINT NOT NULL,
    time {TIMESTAMP} NOT NULL,
    board TEXT,
    temp_c DOUBLE PRECISION,
    power_w DOUBLE PRECISION,
    gpu_load_pct DOUBLE PRECISION,
    mem_available_mb BIGINT,
    throttled BOOLEAN,
    throttle_reasons TEXT,
    extra {JSON},
    PRIMARY KEY (device_id, ts)
);
CREATE INDEX telemetry_time ON telemetry (time);

-- Messages the collector could not store (not JSON, unknown schema, wrong key type,
-- too large, device id of the topic and the record disagree...). Bounded: the
-- collector keeps the newest [collect] rejects_max rows.
CREATE TABLE rejects (
    id {ID},
    time {TIMESTAMP} NOT NULL,
    topic TEXT NOT NULL,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    payload_bytes BIGINT NOT NULL,
    -- the first bytes of the payload (lossy UTF-8)
    payload TEXT
);
CREATE INDEX rejects_time ON rejects (time);
