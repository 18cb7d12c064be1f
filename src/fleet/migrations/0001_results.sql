-- edgebench fleet store, schema version 1: devices, results, summaries, sweeps.
--
-- One text for SQLite and PostgreSQL. Three tokens are replaced per engine
-- (src/fleet/schema.rs): {TIMESTAMP} (PostgreSQL TIMESTAMPTZ, SQLite TEXT holding
-- RFC 3339 UTC, e.g. 2026-12-02T12:00:00.000Z), {JSON} (JSONB / TEXT) and {ID}
-- (an auto-numbered primary key). Column names are the record keys (DESIGN.md
-- section 5); `time` is the record's `ts` as a timestamp, for Grafana; `extra` holds
-- the keys this schema does not know, as a JSON object (NULL when there are none).

CREATE TABLE devices (
    device_id TEXT PRIMARY KEY,
    board TEXT,
    -- from <prefix>/<device>/status: online / offline
    status TEXT,
    online BOOLEAN,
    -- last time anything was heard from the device
    time {TIMESTAMP} NOT NULL,
    first_seen {TIMESTAMP} NOT NULL,
    -- the retained <prefix>/<device>/info payload, whole
    info {JSON},
    info_time {TIMESTAMP},
    status_time {TIMESTAMP}
);

CREATE TABLE results (
    run_id TEXT PRIMARY KEY,
    time {TIMESTAMP} NOT NULL,
    record TEXT NOT NULL,
    schema BIGINT NOT NULL,
    ts BIGINT NOT NULL,
    device_id TEXT NOT NULL,
    board TEXT,
    sweep_id TEXT,
    status TEXT,
    error TEXT,
    model TEXT,
    model_sha256 TEXT,
    task TEXT,
    backend TEXT,
    ep TEXT,
    ep_requested TEXT,
    precision TEXT,
    batch BIGINT,
    batch_mode TEXT,
    threads BIGINT,
    input_shape TEXT,
    iterations BIGINT,
    warmup_iterations BIGINT,
    duration_s DOUBLE PRECISION,
    stop_reason TEXT,
    init_ms DOUBLE PRECISION,
    first_ms DOUBLE PRECISION,
    latency_ms_mean DOUBLE PRECISION,
    latency_ms_std DOUBLE PRECISION,
    latency_ms_min DOUBLE PRECISION,
    latency_ms_max DOUBLE PRECISION,
    latency_ms_p50 DOUBLE PRECISION,
    latency_ms_p90 DOUBLE PRECISION,
    latency_ms_p95 DOUBLE PRECISION,
    latency_ms_p99 DOUBLE PRECISION,
    latency_ms_p999 DOUBLE PRECISION,
    latency_ms_per_sample_p50 DOUBLE PRECISION,
    throughput_ips DOUBLE PRECISION,
    latency_ms_sum DOUBLE PRECISION,
    cv DOUBLE PRECISION,
    outliers BIGINT,
    median_rel_ci DOUBLE PRECISION,
    warnings TEXT,
    throttled BOOLEAN,
    throttle_reasons TEXT,
    temp_c_start DOUBLE PRECISION,
    temp_c_max DOUBLE PRECISION,
    temp_c_end DOUBLE PRECISION,
    freq_mhz_min DOUBLE PRECISION,
    freq_mhz_cap DOUBLE PRECISION,
    power_w_mean DOUBLE PRECISION,
    energy_mj_per_sample DOUBLE PRECISION,
    power_scope TEXT,
    power_sample_hz DOUBLE PRECISION,
    energy_method TEXT,
    cooldown_s DOUBLE PRECISION,
    cooldown_reached BOOLEAN,
    runtime TEXT,
    runtime_version TEXT,
    edgebench_version TEXT,
    kernel TEXT,
    governor TEXT,
    seed BIGINT,
    extra {JSON},
    -- where the row came from: mqtt:<topic> or import:<file name>
    source TEXT,
    stored_at {TIMESTAMP} NOT NULL
);
CREATE INDEX results_device_time ON results (device_id, time);
CREATE INDEX results_model_time ON results (model, time);
CREATE INDEX results_time ON results (time);
CREATE INDEX results_sweep ON results (sweep_id);

CREATE TABLE summaries (
    -- stable key: <sweep_id>/<model>/<backend>/<ep>/<precision>/t<threads>
    summary_id TEXT PRIMARY KEY,
    time {TIMESTAMP} NOT NULL,
    record TEXT NOT NULL,
    schema BIGINT NOT NULL,
    ts BIGINT NOT NULL,
    device_id TEXT NOT NULL,
    board TEXT,
    sweep_id TEXT NOT NULL,
    model TEXT,
    backend TEXT,
    ep TEXT,
    precision TEXT,
    threads BIGINT,
    knee_batch BIGINT,
    knee_throughput_ips DOUBLE PRECISION,
    peak_throughput_ips DOUBLE PRECISION,
    peak_batch BIGINT,
    knee_fraction DOUBLE PRECISION,
    -- batch:throughput pairs, e.g. 1:95.2,2:160.1
    curve TEXT,
    failed_batches TEXT,
    baseline TEXT,
    edgebench_version TEXT,
    -- gain_b<batch> keys and anything newer
    extra {JSON},
    source TEXT,
    stored_at {TIMESTAMP} NOT NULL
);
CREATE INDEX summaries_device_time ON summaries (device_id, time);
CREATE INDEX summaries_model_time ON summaries (model, time);
CREATE INDEX summaries_sweep ON summaries (sweep_id);

-- one row per (device, sweep), from <prefix>/<device>/sweep/state (latest state wins)
CREATE TABLE sweeps (
    device_id TEXT NOT NULL,
    sweep_id TEXT NOT NULL,
    time {TIMESTAMP} NOT NULL,
    ts BIGINT NOT NULL,
    first_time {TIMESTAMP} NOT NULL,
    sweep TEXT,
    request_id TEXT,
    state TEXT,
    done BIGINT,
    total BIGINT,
    queued BIGINT,
    current TEXT,
    eta_s DOUBLE PRECISION,
    error TEXT,
    extra {JSON},
    PRIMARY KEY (device_id, sweep_id)
);
CREATE INDEX sweeps_time ON sweeps (time);
