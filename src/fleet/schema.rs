//! The fleet store's schema: numbered migrations (one SQL text for both engines) and
//! the typed columns of each record table. Pure: no IO.
//!
//! The migration files use three tokens, replaced per engine by [`render`]:
//! `{TIMESTAMP}`, `{JSON}` and `{ID}`. Everything else is SQL both SQLite (3.35+) and
//! PostgreSQL (12+) accept as written. Applied versions are recorded in
//! `edgebench_schema`; a store whose version is newer than [`VERSION`] is refused.

/// The two engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// One numbered migration.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, in order; `MIGRATIONS[i].version == i + 1`.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_results.sql",
        sql: include_str!("migrations/0001_results.sql"),
    },
    Migration {
        version: 2,
        name: "0002_telemetry_rejects.sql",
        sql: include_str!("migrations/0002_telemetry_rejects.sql"),
    },
];

/// The schema version this build writes.
pub const VERSION: u32 = MIGRATIONS.len() as u32;

/// The table recording applied migrations (one row per version).
pub const VERSION_TABLE: &str = "edgebench_schema";

/// SQL creating [`VERSION_TABLE`] (same text for both engines).
pub const VERSION_TABLE_SQL: &str = "CREATE TABLE IF NOT EXISTS edgebench_schema (\
     version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)";

/// A migration's SQL for `engine`.
pub fn render(sql: &str, engine: Engine) -> String {
    let (ts, json, id) = match engine {
        Engine::Sqlite => ("TEXT", "TEXT", "INTEGER PRIMARY KEY AUTOINCREMENT"),
        Engine::Postgres => (
            "TIMESTAMPTZ",
            "JSONB",
            "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        ),
    };
    sql.replace("{TIMESTAMP}", ts)
        .replace("{JSON}", json)
        .replace("{ID}", id)
}

/// The SQL type family of a typed column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColType {
    /// TEXT
    Text,
    /// BIGINT (integers of the record)
    Int,
    /// DOUBLE PRECISION
    Real,
    /// BOOLEAN (SQLite: 0 / 1)
    Bool,
}

use ColType::{Bool, Int, Real, Text};

/// Typed columns of `results`, named and typed as the result record's keys
/// (`crate::bench::result::ResultRecord`). Keys not listed go to `extra`.
pub const RESULT_COLUMNS: &[(&str, ColType)] = &[
    ("record", Text),
    ("schema", Int),
    ("ts", Int),
    ("device_id", Text),
    ("board", Text),
    ("sweep_id", Text),
    ("run_id", Text),
    ("status", Text),
    ("error", Text),
    ("model", Text),
    ("model_sha256", Text),
    ("task", Text),
    ("backend", Text),
    ("ep", Text),
    ("ep_requested", Text),
    ("precision", Text),
    ("batch", Int),
    ("batch_mode", Text),
    ("threads", Int),
    ("input_shape", Text),
    ("iterations", Int),
    ("warmup_iterations", Int),
    ("duration_s", Real),
    ("stop_reason", Text),
    ("init_ms", Real),
    ("first_ms", Real),
    ("latency_ms_mean", Real),
    ("latency_ms_std", Real),
    ("latency_ms_min", Real),
    ("latency_ms_max", Real),
    ("latency_ms_p50", Real),
    ("latency_ms_p90", Real),
    ("latency_ms_p95", Real),
    ("latency_ms_p99", Real),
    ("latency_ms_p999", Real),
    ("latency_ms_per_sample_p50", Real),
    ("throughput_ips", Real),
    ("latency_ms_sum", Real),
    ("cv", Real),
    ("outliers", Int),
    ("median_rel_ci", Real),
    ("warnings", Text),
    ("throttled", Bool),
    ("throttle_reasons", Text),
    ("temp_c_start", Real),
    ("temp_c_max", Real),
    ("temp_c_end", Real),
    ("freq_mhz_min", Real),
    ("freq_mhz_cap", Real),
    ("power_w_mean", Real),
    ("energy_mj_per_sample", Real),
    ("power_scope", Text),
    ("power_sample_hz", Real),
    ("energy_method", Text),
    ("cooldown_s", Real),
    ("cooldown_reached", Bool),
    ("runtime", Text),
    ("runtime_version", Text),
    ("edgebench_version", Text),
    ("kernel", Text),
    ("governor", Text),
    ("seed", Int),
];

/// Typed columns of `summaries` (`crate::bench::result::SummaryRecord`); the
/// `gain_b<batch>` keys go to `extra`.
pub const SUMMARY_COLUMNS: &[(&str, ColType)] = &[
    ("summary_id", Text),
    ("record", Text),
    ("schema", Int),
    ("ts", Int),
    ("device_id", Text),
    ("board", Text),
    ("sweep_id", Text),
    ("model", Text),
    ("backend", Text),
    ("ep", Text),
    ("precision", Text),
    ("threads", Int),
    ("knee_batch", Int),
    ("knee_throughput_ips", Real),
    ("peak_throughput_ips", Real),
    ("peak_batch", Int),
    ("knee_fraction", Real),
    ("curve", Text),
    ("failed_batches", Text),
    ("baseline", Text),
    ("edgebench_version", Text),
];

/// Typed columns of `telemetry`; every other key of the payload goes to `extra`.
pub const TELEMETRY_COLUMNS: &[(&str, ColType)] = &[
    ("device_id", Text),
    ("ts", Int),
    ("board", Text),
    ("temp_c", Real),
    ("power_w", Real),
    ("gpu_load_pct", Real),
    ("mem_available_mb", Int),
    ("throttled", Bool),
    ("throttle_reasons", Text),
];

/// Typed columns of `sweeps` (the `sweep/state` payload).
pub const SWEEP_COLUMNS: &[(&str, ColType)] = &[
    ("device_id", Text),
    ("sweep_id", Text),
    ("ts", Int),
    ("sweep", Text),
    ("request_id", Text),
    ("state", Text),
    ("done", Int),
    ("total", Int),
    ("queued", Int),
    ("current", Text),
    ("eta_s", Real),
    ("error", Text),
];

/// The stable key of a sweep summary: one per (sweep, model, backend, ep, precision,
/// threads), the group the runner summarises over.
pub fn summary_id(
    sweep_id: &str,
    model: &str,
    backend: &str,
    ep: &str,
    precision: &str,
    threads: u32,
) -> String {
    format!("{sweep_id}/{model}/{backend}/{ep}/{precision}/t{threads}")
}

/// Unix milliseconds as RFC 3339 UTC with milliseconds (`2026-12-02T12:00:00.000Z`),
/// the SQLite form of a `time` column (sorts as text, read by SQLite's date functions
/// and by Grafana).
pub fn rfc3339_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// Parses what [`rfc3339_ms`] writes (also without milliseconds) back to Unix ms.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let s = s.strip_suffix('Z').unwrap_or(s);
    let (date, time) = s.split_once(['T', ' '])?;
    let mut dp = date.splitn(3, '-');
    let y: i64 = dp.next()?.parse().ok()?;
    let m: u32 = dp.next()?.parse().ok()?;
    let d: u32 = dp.next()?.parse().ok()?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut tp = hms.splitn(3, ':');
    let hh: i64 = tp.next()?.parse().ok()?;
    let mm: i64 = tp.next()?.parse().ok()?;
    let ss: i64 = tp.next()?.parse().ok()?;
    let frac3: String = frac.chars().chain("000".chars()).take(3).collect();
    let milli: i64 = frac3.parse().ok()?;
    let days = days_from_civil(y, m, d);
    Some(((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1000) + milli)
}

// Howard Hinnant's civil calendar algorithms (proleptic Gregorian, days since 1970-01-01).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::result::{Record, ResultRecord, SummaryRecord};

    #[test]
    fn migrations_are_numbered_in_order_and_tokens_all_replaced() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1);
            assert!(m.name.starts_with(&format!("{:04}_", i + 1)), "{}", m.name);
            for e in [Engine::Sqlite, Engine::Postgres] {
                let sql = render(m.sql, e);
                assert!(!sql.contains('{'), "{} has an unknown token", m.name);
            }
        }
    }

    /// A record with every optional key set serialises only keys that have a typed
    /// column (the flattened maps aside): the schema and the record agree.
    #[test]
    fn every_record_key_has_a_typed_column() {
        let full = r#"{"record":"result","schema":1,"ts":1,"device_id":"d","board":"b",
            "sweep_id":"s","run_id":"r","status":"ok","error":"e","model":"m","model_sha256":"x",
            "task":"t","backend":"ort","ep":"cpu","ep_requested":"cpu","precision":"fp32",
            "batch":1,"batch_mode":"native","threads":0,"input_shape":"1x3","iterations":5,
            "warmup_iterations":2,"duration_s":1.0,"stop_reason":"x","init_ms":1.0,"first_ms":1.0,
            "latency_ms_mean":1.0,"latency_ms_std":1.0,"latency_ms_min":1.0,"latency_ms_max":1.0,
            "latency_ms_p50":1.0,"latency_ms_p90":1.0,"latency_ms_p95":1.0,"latency_ms_p99":1.0,
            "latency_ms_p999":1.0,"latency_ms_per_sample_p50":1.0,"throughput_ips":1.0,
            "latency_ms_sum":1.0,"cv":0.1,"outliers":0,"median_rel_ci":0.1,"warnings":"w",
            "throttled":false,"throttle_reasons":"r","temp_c_start":1.0,"temp_c_max":1.0,
            "temp_c_end":1.0,"freq_mhz_min":1.0,"freq_mhz_cap":1.0,"power_w_mean":1.0,
            "energy_mj_per_sample":1.0,"power_scope":"p","power_sample_hz":1.0,
            "energy_method":"e","cooldown_s":1.0,"cooldown_reached":true,"runtime":"r",
            "runtime_version":"v","edgebench_version":"v","kernel":"k","governor":"g","seed":1}"#;
        let r: ResultRecord = serde_json::from_str(full).unwrap();
        assert!(
            r.extra.is_empty(),
            "keys not in the test record: {:?}",
            r.extra
        );
        let v: serde_json::Value =
            serde_json::from_str(&Record::Result(Box::new(r)).to_json()).unwrap();
        for k in v.as_object().unwrap().keys() {
            assert!(
                RESULT_COLUMNS.iter().any(|(c, _)| c == k),
                "result key `{k}` has no column in results"
            );
        }
        let s = SummaryRecord {
            knee_batch: Some(1),
            knee_throughput_ips: Some(1.0),
            peak_throughput_ips: Some(1.0),
            peak_batch: Some(1),
            failed_batches: Some("2".into()),
            baseline: Some("ort:cpu".into()),
            summary_id: Some("x".into()),
            ..Default::default()
        };
        let v: serde_json::Value =
            serde_json::from_str(&Record::Summary(Box::new(s)).to_json()).unwrap();
        for k in v.as_object().unwrap().keys() {
            assert!(
                SUMMARY_COLUMNS.iter().any(|(c, _)| c == k),
                "summary key `{k}` has no column in summaries"
            );
        }
    }

    #[test]
    fn rfc3339_round_trips() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_767_225_600_123), "2026-01-01T00:00:00.123Z");
        assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        for ms in [
            0,
            1,
            999,
            1_767_225_600_123,
            4_102_444_799_999,
            951_868_799_000,
        ] {
            assert_eq!(parse_rfc3339_ms(&rfc3339_ms(ms)), Some(ms), "{ms}");
        }
        assert_eq!(
            parse_rfc3339_ms("2026-01-01 00:00:01"),
            Some(1_767_225_601_000)
        );
        assert_eq!(parse_rfc3339_ms("nonsense"), None);
    }
}
