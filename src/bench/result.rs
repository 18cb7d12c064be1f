//! Result records (DESIGN.md section 5): flat JSON, one object per line.
//!
//! Keys keep one type forever, units sit in key names, timestamps are integer Unix
//! milliseconds, and an absent reading is an absent key (never null).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Version of the record layout; bumped only on an incompatible change.
pub const SCHEMA: u32 = 1;

/// One configuration's result (`record = "result"`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ResultRecord {
    pub record: String,
    pub schema: u32,
    /// Unix ms when the configuration finished.
    pub ts: i64,
    pub device_id: String,
    pub board: String,
    pub sweep_id: String,
    /// Unique per configuration run; consumers de-duplicate on it.
    pub run_id: String,
    /// `ok`, `failed` or `interrupted`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
    pub model: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub model_sha256: Option<String>,
    /// Network architecture from the manifest (`mobilenet_v2`...): what `report` pairs by.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub arch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub task: Option<String>,
    pub backend: String,
    /// Provider actually used (not just requested).
    pub ep: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ep_requested: Option<String>,
    /// Precision that ran: what the model file and the runtime flags make it (see
    /// `precision_requested` for what was asked).
    pub precision: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub precision_requested: Option<String>,
    pub batch: u32,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub batch_mode: Option<String>,
    /// Samples per runtime call: `batch` when native, the model's fixed batch when
    /// sequential (`batch / batch_per_call` calls per timed batch).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub batch_per_call: Option<u32>,
    /// `auto` when a knee search (`--batch auto`) chose this batch.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub batch_search: Option<String>,
    /// Intra-op threads asked for (0: runtime default).
    pub threads: u32,
    /// Input shape fed, e.g. `1x3x224x224`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub input_shape: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub iterations: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub warmup_iterations: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub duration_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub stop_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub init_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub first_ms: Option<f64>,
    /// `[onnxruntime] io = "device"`: host-to-device copy of the inputs and
    /// device-to-host copy of the outputs of one call, ms (median of 5, outside the
    /// timed region, which then holds the inference alone).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub h2d_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub d2h_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub latency_ms_mean: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub latency_ms_std: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub latency_ms_min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub latency_ms_max: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub latency_ms_p50: Option<f64>,
    /// Distribution-free 95 % confidence interval of `latency_ms_p50` (order statistics;
    /// absent below 6 timed runs).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub latency_ms_p50_ci_low: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub latency_ms_p50_ci_high: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub latency_ms_p90: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub latency_ms_p95: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub latency_ms_p99: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub latency_ms_p999: Option<f64>,
    /// Median latency per sample (p50 / batch).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub latency_ms_per_sample_p50: Option<f64>,
    /// Samples per second: `batch * iterations / sum(latency)`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub throughput_ips: Option<f64>,
    /// Sum of the timed latencies (ms), so throughput can be re-derived.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub latency_ms_sum: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cv: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub outliers: Option<u64>,
    /// Relative half-width of the 95 % CI of the median.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub median_rel_ci: Option<f64>,
    /// 95 % CI of `throughput_ips` by batch means (blocks of consecutive runs, so
    /// drift widens it): lower end, samples/s ...
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub throughput_ips_ci_low: Option<f64>,
    /// ... and upper end.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub throughput_ips_ci_high: Option<f64>,
    /// Relative half-width of the 95 % batch-means CI of the mean latency.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mean_rel_ci: Option<f64>,
    /// Blocks of consecutive runs behind the batch-means CI.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ci_blocks: Option<u32>,
    /// Comma-separated warning flags (`noisy`, `throttled`, `few_runs`, `slow_first_run`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub warnings: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub throttled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub throttle_reasons: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub temp_c_start: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub temp_c_max: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub temp_c_end: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub freq_mhz_min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub freq_mhz_cap: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub power_w_mean: Option<f64>,
    /// On-board estimate (see `energy_method`), not a wall-power measurement.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub energy_mj_per_sample: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub power_scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub power_sample_hz: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub energy_method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cooldown_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cooldown_reached: Option<bool>,
    pub runtime: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub runtime_version: Option<String>,
    pub edgebench_version: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub kernel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub governor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub seed: Option<u64>,
    /// Board, power mode, clocks and library versions (flat keys, telemetry/context.rs).
    /// Before `extra`, so that it takes its keys first when a line is parsed.
    #[serde(flatten)]
    pub context: crate::telemetry::context::RunContext,
    /// Backend-specific flat fields (provider options, op mapping...).
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// One sweep summary (`record = "summary"`), per model, backend, ep, precision, threads.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SummaryRecord {
    pub record: String,
    pub schema: u32,
    pub ts: i64,
    pub device_id: String,
    pub board: String,
    pub sweep_id: String,
    pub model: String,
    pub backend: String,
    pub ep: String,
    pub precision: String,
    pub threads: u32,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub knee_batch: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub knee_throughput_ips: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub peak_throughput_ips: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub peak_batch: Option<u32>,
    pub knee_fraction: f64,
    /// `sequential` or `native`: a summary covers one batch mode (curves never mixed).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub batch_mode: Option<String>,
    /// Network architecture of `model`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub arch: Option<String>,
    /// The knee's range: smallest batch that may reach the fraction of the peak, and
    /// smallest that surely does, given the throughput intervals (DESIGN.md section 15).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub knee_batch_low: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub knee_batch_high: Option<u32>,
    /// Smallest batch from which every larger batch stays at or above the fraction.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sustained_knee_batch: Option<u32>,
    /// Batches left out of the knee because the board throttled, comma-separated.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub throttled_batches: Option<String>,
    /// The whole curve as `batch:throughput` pairs, e.g. `1:95.2,2:160.1`.
    pub curve: String,
    /// Batches that failed, comma-separated.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub failed_batches: Option<String>,
    /// Relative gains against the configured baseline: `gain_b<batch>` = baseline / this.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub baseline: Option<String>,
    #[serde(flatten)]
    pub gains: BTreeMap<String, f64>,
    pub edgebench_version: String,
    /// Stable key of this summary across re-publishing (`<sweep_id>/<model>/<backend>/
    /// <ep>/<precision>/t<threads>`, see `crate::fleet::schema::summary_id`): the fleet
    /// store upserts on it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub summary_id: Option<String>,
}

/// A line of the results file: either kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Result(Box<ResultRecord>),
    Summary(Box<SummaryRecord>),
}

impl Record {
    /// The JSON line (no trailing newline).
    pub fn to_json(&self) -> String {
        // Serialising these plain structs cannot fail (no maps with non-string keys).
        match self {
            Record::Result(r) => finite_json(r.as_ref()),
            Record::Summary(s) => finite_json(s.as_ref()),
        }
        .expect("record serialises")
    }

    /// Parses one line, telling the kinds apart by `record`.
    pub fn from_json(line: &str) -> anyhow::Result<Record> {
        let v: serde_json::Value = serde_json::from_str(line)?;
        match v.get("record").and_then(|r| r.as_str()) {
            Some("result") => Ok(Record::Result(Box::new(serde_json::from_value(v)?))),
            Some("summary") => Ok(Record::Summary(Box::new(serde_json::from_value(v)?))),
            Some(other) => anyhow::bail!("unknown record kind `{other}`"),
            None => anyhow::bail!("line has no `record` key"),
        }
    }
}

/// JSON of a flat record in field order, without NaN / inf: serde_json writes a
/// non-finite float as `null`, and an absent reading must be an absent key, so such
/// keys are dropped (the struct is rebuilt without them to keep the field order).
fn finite_json<T>(rec: &T) -> serde_json::Result<String>
where
    T: Serialize + serde::de::DeserializeOwned,
{
    let line = serde_json::to_string(rec)?;
    if !line.contains("null") {
        return Ok(line);
    }
    let mut v = serde_json::to_value(rec)?;
    if let serde_json::Value::Object(m) = &mut v {
        m.retain(|_, x| !x.is_null());
    }
    serde_json::to_string(&serde_json::from_value::<T>(v)?)
}

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_values_are_absent_keys_and_round_trip() {
        let r = ResultRecord {
            record: "result".into(),
            schema: SCHEMA,
            status: "failed".into(),
            error: Some("boom".into()),
            batch: 4,
            ..Default::default()
        };
        let line = Record::Result(Box::new(r.clone())).to_json();
        assert!(!line.contains("null"), "{line}");
        assert!(!line.contains("latency_ms_p50"), "{line}");
        assert!(line.contains("\"error\":\"boom\""));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert!(
            v.as_object()
                .unwrap()
                .values()
                .all(|x| !x.is_object() && !x.is_array()),
            "flat"
        );
        assert_eq!(
            Record::from_json(&line).unwrap(),
            Record::Result(Box::new(r))
        );
    }

    #[test]
    fn non_finite_values_never_reach_a_record() {
        let mut r = ResultRecord {
            record: "result".into(),
            status: "ok".into(),
            error: Some("a null pointer in the message stays".into()),
            latency_ms_p50: Some(f64::NAN),
            throughput_ips: Some(f64::INFINITY),
            median_rel_ci: Some(f64::NEG_INFINITY),
            latency_ms_p90: Some(2.5),
            ..Default::default()
        };
        r.extra
            .insert("x_ratio".into(), serde_json::json!(f64::NAN));
        let line = Record::Result(Box::new(r)).to_json();
        assert!(!line.contains(":null"), "{line}");
        for k in [
            "latency_ms_p50",
            "throughput_ips",
            "median_rel_ci",
            "x_ratio",
        ] {
            assert!(!line.contains(k), "{k} in {line}");
        }
        assert!(line.contains("\"latency_ms_p90\":2.5"), "{line}");
        assert!(line.contains("null pointer"), "{line}");
        assert!(
            line.starts_with("{\"record\":\"result\""),
            "field order kept: {line}"
        );
        let mut s = SummaryRecord {
            record: "summary".into(),
            peak_throughput_ips: Some(f64::NAN),
            knee_fraction: 0.95,
            ..Default::default()
        };
        s.gains.insert("gain_b1".into(), f64::INFINITY);
        let line = Record::Summary(Box::new(s)).to_json();
        assert!(
            !line.contains("null") && !line.contains("gain_b1"),
            "{line}"
        );
    }

    #[test]
    fn summary_gains_are_flat_keys() {
        let mut s = SummaryRecord {
            record: "summary".into(),
            knee_batch: Some(4),
            ..Default::default()
        };
        s.gains.insert("gain_b1".into(), 2.5);
        let line = Record::Summary(Box::new(s)).to_json();
        assert!(line.contains("\"gain_b1\":2.5"), "{line}");
        assert!(matches!(
            Record::from_json(&line).unwrap(),
            Record::Summary(_)
        ));
        assert!(Record::from_json("{\"record\":\"x\"}").is_err());
    }
}
