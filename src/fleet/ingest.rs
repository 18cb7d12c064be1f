//! Pure mapping from what arrives (an MQTT message or a JSON Lines line) to store rows.
//! No IO: the collector and `import` feed it, the store engines write its rows.
//!
//! Every typed column is bound on every row (NULL when the key is absent), so each
//! table has one statement text and engines can cache it. Keys without a typed column
//! go to the row's `extra` JSON object: nothing is dropped.

use serde_json::{Map, Value};

use super::schema::{
    self, ColType, RESULT_COLUMNS, SUMMARY_COLUMNS, SWEEP_COLUMNS, TELEMETRY_COLUMNS,
};
use crate::bench::result::SCHEMA;

/// One bound value.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Bool(bool),
    /// Unix milliseconds, written as the engine's timestamp.
    Time(i64),
    /// A JSON object, written as JSONB (PostgreSQL) or text (SQLite).
    Json(Value),
}

/// What an insert does when the key already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConflict {
    /// Keep the stored row (records are immutable: a redelivery is the same record).
    Nothing,
    /// Overwrite every column but those in `keep`, only when the new row's `newer`
    /// column is at least the stored one (late redeliveries do not move state back).
    Update {
        keep: &'static [&'static str],
        newer: &'static str,
    },
}

/// One row to upsert.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub table: &'static str,
    /// The conflict target (primary key columns).
    pub key: &'static [&'static str],
    pub cols: Vec<(&'static str, Val)>,
    pub on_conflict: OnConflict,
}

impl Row {
    /// The bound value of `col`, if the row has it.
    pub fn get(&self, col: &str) -> Option<&Val> {
        self.cols.iter().find(|(c, _)| *c == col).map(|(_, v)| v)
    }
}

/// Why a message or line was not stored. `kind()` is the short name counted, logged
/// and written to the `rejects` table.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Reject {
    #[error("payload of {0} bytes is over the limit of {1} bytes")]
    TooLarge(usize, usize),
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("JSON but not an object")]
    NotObject,
    #[error("unknown record schema {0} (this build reads up to {SCHEMA})")]
    Schema(String),
    #[error("{0}")]
    Type(String),
    #[error("missing key `{0}`")]
    Missing(&'static str),
    #[error("topic names device `{topic}` but the record says `{record}`")]
    DeviceMismatch { topic: String, record: String },
    #[error("unexpected topic: {0}")]
    Topic(String),
    #[error("`record` is `{0}` where `{1}` was expected")]
    RecordKind(String, &'static str),
}

impl Reject {
    /// Short, stable name of the reason.
    pub fn kind(&self) -> &'static str {
        match self {
            Reject::TooLarge(..) => "too_large",
            Reject::NotJson(_) => "not_json",
            Reject::NotObject => "not_object",
            Reject::Schema(_) => "schema",
            Reject::Type(_) => "wrong_type",
            Reject::Missing(_) => "missing_key",
            Reject::DeviceMismatch { .. } => "device_mismatch",
            Reject::Topic(_) => "topic",
            Reject::RecordKind(..) => "record_kind",
        }
    }
}

/// The message kinds the collector subscribes to, with their topic suffixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Result,
    Summary,
    Telemetry,
    Info,
    Status,
    SweepState,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Result,
        Kind::Summary,
        Kind::Telemetry,
        Kind::Info,
        Kind::Status,
        Kind::SweepState,
    ];

    /// The topic suffix after `<prefix>/<device_id>/`.
    pub fn suffix(self) -> &'static str {
        match self {
            Kind::Result => "result",
            Kind::Summary => "summary",
            Kind::Telemetry => "telemetry",
            Kind::Info => "info",
            Kind::Status => "status",
            Kind::SweepState => "sweep/state",
        }
    }
}

/// Is `id` a device id the boards can have (`[a-z0-9-]+`, not the fleet address)?
pub fn valid_device_id(id: &str) -> bool {
    !id.is_empty()
        && id != crate::mqtt::topics::FLEET_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Splits `<prefix>/<device_id>/<kind>` into the device id and the kind.
pub fn classify<'t>(prefix: &str, topic: &'t str) -> Result<(&'t str, Kind), Reject> {
    let bad = || Reject::Topic(topic.to_string());
    let rest = topic
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or_else(bad)?;
    let (device, suffix) = rest.split_once('/').ok_or_else(bad)?;
    let kind = Kind::ALL
        .into_iter()
        .find(|k| k.suffix() == suffix)
        .ok_or_else(bad)?;
    if !valid_device_id(device) {
        return Err(bad());
    }
    Ok((device, kind))
}

/// Limits applied to incoming payloads.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_payload_bytes: usize,
}

/// The rows one MQTT message becomes: the record's row(s) and a touch of its device.
pub fn from_message(
    prefix: &str,
    topic: &str,
    payload: &[u8],
    limits: Limits,
    now_ms: i64,
) -> Result<Vec<Row>, Reject> {
    let (device, kind) = classify(prefix, topic)?;
    if payload.len() > limits.max_payload_bytes {
        return Err(Reject::TooLarge(payload.len(), limits.max_payload_bytes));
    }
    let source = format!("mqtt:{topic}");
    if kind == Kind::Status {
        let text = String::from_utf8_lossy(payload);
        return Ok(vec![status_row(device, text.trim(), now_ms)]);
    }
    let obj = parse_object(payload)?;
    if let Some(rec) = obj.get("device_id") {
        let rec = rec
            .as_str()
            .ok_or_else(|| type_err("device_id", rec, Text))?;
        if rec != device {
            return Err(Reject::DeviceMismatch {
                topic: device.to_string(),
                record: rec.to_string(),
            });
        }
    }
    let mut rows = Vec::with_capacity(2);
    match kind {
        Kind::Result => rows.push(result_row(obj, &source, now_ms)?),
        Kind::Summary => rows.push(summary_row(obj, &source, now_ms)?),
        Kind::Telemetry => rows.push(telemetry_row(device, obj)?),
        Kind::Info => {
            rows.push(info_row(device, obj, now_ms)?);
            return Ok(rows);
        }
        Kind::SweepState => {
            if let Some(r) = sweep_row(device, obj)? {
                rows.push(r);
            }
        }
        Kind::Status => unreachable!("handled above"),
    }
    let board = rows.first().and_then(|r| match r.get("board") {
        Some(Val::Text(b)) => Some(b.clone()),
        _ => None,
    });
    rows.push(touch_row(device, board, now_ms));
    Ok(rows)
}

/// Parses a payload or line into a JSON object.
pub fn parse_object(payload: &[u8]) -> Result<Map<String, Value>, Reject> {
    match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Reject::NotObject),
        Err(e) => Err(Reject::NotJson(e.to_string())),
    }
}

/// The rows of one `edgebench run` JSON Lines line (a result or a summary record),
/// with its device touched. `source` says where it came from (`import:<file>`).
pub fn from_line(line: &str, source: &str, now_ms: i64) -> Result<Vec<Row>, Reject> {
    let obj = parse_object(line.as_bytes())?;
    let row = match obj.get("record").and_then(Value::as_str) {
        Some("summary") => summary_row(obj, source, now_ms)?,
        _ => result_row(obj, source, now_ms)?,
    };
    let (dev, board) = match (row.get("device_id"), row.get("board")) {
        (Some(Val::Text(d)), Some(Val::Text(b))) => (d.clone(), Some(b.clone())),
        (Some(Val::Text(d)), _) => (d.clone(), None),
        _ => return Err(Reject::Missing("device_id")),
    };
    let ts = match row.get("ts") {
        Some(Val::Int(t)) => *t,
        _ => now_ms,
    };
    Ok(vec![row, touch_row(&dev, board, ts)])
}

/// A result record's row (`results`, upsert on `run_id`, never overwritten).
pub fn result_row(mut obj: Map<String, Value>, source: &str, now_ms: i64) -> Result<Row, Reject> {
    check_record(&obj, "result")?;
    for k in ["ts", "device_id", "run_id"] {
        require(&obj, k)?;
    }
    nonempty(&obj, "run_id")?;
    let mut cols = Vec::with_capacity(RESULT_COLUMNS.len() + 4);
    take_typed(&mut obj, RESULT_COLUMNS, &mut cols)?;
    let ts = int_of(&cols, "ts");
    cols.push(("time", Val::Time(ts)));
    cols.push(("extra", extra(obj)));
    cols.push(("source", Val::Text(source.to_string())));
    cols.push(("stored_at", Val::Time(now_ms)));
    Ok(Row {
        table: "results",
        key: &["run_id"],
        cols,
        on_conflict: OnConflict::Nothing,
    })
}

/// A sweep summary's row (`summaries`, upsert on `summary_id`: the record's own, or
/// derived from its group key when an older record has none).
pub fn summary_row(mut obj: Map<String, Value>, source: &str, now_ms: i64) -> Result<Row, Reject> {
    check_record(&obj, "summary")?;
    for k in [
        "ts",
        "device_id",
        "sweep_id",
        "model",
        "backend",
        "ep",
        "precision",
    ] {
        require(&obj, k)?;
    }
    let mut cols = Vec::with_capacity(SUMMARY_COLUMNS.len() + 4);
    take_typed(&mut obj, SUMMARY_COLUMNS, &mut cols)?;
    if matches!(cols[0].1, Val::Null) {
        let t = |k: &str| match cols.iter().find(|(c, _)| *c == k) {
            Some((_, Val::Text(s))) => s.clone(),
            _ => String::new(),
        };
        let threads = int_of(&cols, "threads");
        let id = schema::summary_id(
            &t("sweep_id"),
            &t("model"),
            &t("backend"),
            &t("ep"),
            &t("precision"),
            u32::try_from(threads).unwrap_or(0),
        );
        cols[0].1 = Val::Text(id);
    }
    let ts = int_of(&cols, "ts");
    cols.push(("time", Val::Time(ts)));
    cols.push(("extra", extra(obj)));
    cols.push(("source", Val::Text(source.to_string())));
    cols.push(("stored_at", Val::Time(now_ms)));
    Ok(Row {
        table: "summaries",
        key: &["summary_id"],
        cols,
        on_conflict: OnConflict::Nothing,
    })
}

/// A telemetry sample's row (`telemetry`, key (device_id, ts)).
pub fn telemetry_row(device: &str, mut obj: Map<String, Value>) -> Result<Row, Reject> {
    require(&obj, "ts")?;
    obj.insert("device_id".into(), Value::String(device.to_string()));
    let mut cols = Vec::with_capacity(TELEMETRY_COLUMNS.len() + 2);
    take_typed(&mut obj, TELEMETRY_COLUMNS, &mut cols)?;
    let ts = int_of(&cols, "ts");
    cols.push(("time", Val::Time(ts)));
    cols.push(("extra", extra(obj)));
    Ok(Row {
        table: "telemetry",
        key: &["device_id", "ts"],
        cols,
        on_conflict: OnConflict::Nothing,
    })
}

/// A `sweep/state` payload's row (`sweeps`, latest state per (device, sweep) wins).
/// `None` for a state without a sweep (`idle`): there is no sweep row to keep.
pub fn sweep_row(device: &str, mut obj: Map<String, Value>) -> Result<Option<Row>, Reject> {
    require(&obj, "ts")?;
    if !obj.contains_key("sweep_id") {
        return Ok(None);
    }
    obj.insert("device_id".into(), Value::String(device.to_string()));
    let mut cols = Vec::with_capacity(SWEEP_COLUMNS.len() + 3);
    take_typed(&mut obj, SWEEP_COLUMNS, &mut cols)?;
    let ts = int_of(&cols, "ts");
    cols.push(("time", Val::Time(ts)));
    cols.push(("first_time", Val::Time(ts)));
    cols.push(("extra", extra(obj)));
    Ok(Some(Row {
        table: "sweeps",
        key: &["device_id", "sweep_id"],
        cols,
        on_conflict: OnConflict::Update {
            keep: &["first_time"],
            newer: "ts",
        },
    }))
}

/// The retained `info` payload, whole, on the device's row.
pub fn info_row(device: &str, obj: Map<String, Value>, now_ms: i64) -> Result<Row, Reject> {
    let board = match obj.get("board") {
        None => Val::Null,
        Some(Value::String(b)) => Val::Text(b.clone()),
        Some(v) => return Err(type_err("board", v, ColType::Text)),
    };
    Ok(Row {
        table: "devices",
        key: &["device_id"],
        cols: vec![
            ("device_id", Val::Text(device.to_string())),
            ("board", board),
            ("time", Val::Time(now_ms)),
            ("first_seen", Val::Time(now_ms)),
            ("info", Val::Json(Value::Object(obj))),
            ("info_time", Val::Time(now_ms)),
        ],
        on_conflict: OnConflict::Update {
            keep: &["first_seen"],
            newer: "time",
        },
    })
}

/// `status` (`online` / `offline`, plain text) on the device's row.
pub fn status_row(device: &str, text: &str, now_ms: i64) -> Row {
    Row {
        table: "devices",
        key: &["device_id"],
        cols: vec![
            ("device_id", Val::Text(device.to_string())),
            ("status", Val::Text(text.to_string())),
            ("online", Val::Bool(text == "online")),
            ("time", Val::Time(now_ms)),
            ("first_seen", Val::Time(now_ms)),
            ("status_time", Val::Time(now_ms)),
        ],
        on_conflict: OnConflict::Update {
            keep: &["first_seen"],
            newer: "time",
        },
    }
}

/// "Last seen" on the device's row (and its board, when the record names it).
pub fn touch_row(device: &str, board: Option<String>, now_ms: i64) -> Row {
    let mut cols = vec![
        ("device_id", Val::Text(device.to_string())),
        ("time", Val::Time(now_ms)),
        ("first_seen", Val::Time(now_ms)),
    ];
    if let Some(b) = board {
        cols.push(("board", Val::Text(b)));
    }
    Row {
        table: "devices",
        key: &["device_id"],
        cols,
        on_conflict: OnConflict::Update {
            keep: &["first_seen"],
            newer: "time",
        },
    }
}

/// Is `row` a plain "last seen" touch of a device (from [`touch_row`])?
pub fn is_touch(row: &Row) -> bool {
    row.table == "devices" && row.get("info").is_none() && row.get("status").is_none()
}

/// Bytes of a rejected payload kept in the `rejects` table.
pub const REJECT_PAYLOAD_BYTES: usize = 2048;

/// A `rejects` row.
pub fn reject_row(topic: &str, why: &Reject, payload: &[u8], now_ms: i64) -> Row {
    let keep = &payload[..payload.len().min(REJECT_PAYLOAD_BYTES)];
    Row {
        table: "rejects",
        key: &[],
        cols: vec![
            ("time", Val::Time(now_ms)),
            ("topic", Val::Text(topic.to_string())),
            ("kind", Val::Text(why.kind().to_string())),
            ("reason", Val::Text(why.to_string())),
            ("payload_bytes", Val::Int(payload.len() as i64)),
            (
                "payload",
                Val::Text(String::from_utf8_lossy(keep).into_owned()),
            ),
        ],
        on_conflict: OnConflict::Nothing,
    }
}

fn check_record(obj: &Map<String, Value>, want: &'static str) -> Result<(), Reject> {
    match obj.get("record") {
        None => return Err(Reject::Missing("record")),
        Some(Value::String(r)) if r == want => {}
        Some(Value::String(r)) => return Err(Reject::RecordKind(r.clone(), want)),
        Some(v) => return Err(type_err("record", v, ColType::Text)),
    }
    match obj.get("schema") {
        None => Err(Reject::Missing("schema")),
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 && n <= SCHEMA as u64 => Ok(()),
            _ => Err(Reject::Schema(v.to_string())),
        },
    }
}

fn require(obj: &Map<String, Value>, key: &'static str) -> Result<(), Reject> {
    match obj.get(key) {
        None | Some(Value::Null) => Err(Reject::Missing(key)),
        Some(_) => Ok(()),
    }
}

fn nonempty(obj: &Map<String, Value>, key: &'static str) -> Result<(), Reject> {
    match obj.get(key) {
        Some(Value::String(s)) if s.is_empty() => Err(Reject::Type(format!("`{key}` is empty"))),
        _ => Ok(()),
    }
}

use ColType::Text;

fn type_err(key: &str, v: &Value, want: ColType) -> Reject {
    let want = match want {
        ColType::Text => "a string",
        ColType::Int => "an integer",
        ColType::Real => "a number",
        ColType::Bool => "true or false",
    };
    let mut shown = v.to_string();
    if shown.len() > 60 {
        let mut cut = 60;
        while !shown.is_char_boundary(cut) {
            cut -= 1;
        }
        shown.truncate(cut);
        shown.push_str("...");
    }
    Reject::Type(format!("`{key}` must be {want}, got {shown}"))
}

/// Moves the typed columns out of `obj` into `cols` (NULL when absent), checking types.
fn take_typed(
    obj: &mut Map<String, Value>,
    columns: &[(&'static str, ColType)],
    cols: &mut Vec<(&'static str, Val)>,
) -> Result<(), Reject> {
    for &(name, ty) in columns {
        let v = match obj.remove(name) {
            None | Some(Value::Null) => Val::Null,
            Some(v) => typed(name, &v, ty)?,
        };
        cols.push((name, v));
    }
    Ok(())
}

fn typed(name: &str, v: &Value, ty: ColType) -> Result<Val, Reject> {
    let ok = match (ty, v) {
        (ColType::Text, Value::String(s)) => Some(Val::Text(s.clone())),
        (ColType::Int, Value::Number(n)) => n.as_i64().map(Val::Int),
        (ColType::Real, Value::Number(n)) => n.as_f64().map(Val::Real),
        (ColType::Bool, Value::Bool(b)) => Some(Val::Bool(*b)),
        _ => None,
    };
    ok.ok_or_else(|| type_err(name, v, ty))
}

fn int_of(cols: &[(&'static str, Val)], name: &str) -> i64 {
    match cols.iter().find(|(c, _)| *c == name) {
        Some((_, Val::Int(i))) => *i,
        _ => 0,
    }
}

fn extra(obj: Map<String, Value>) -> Val {
    if obj.is_empty() {
        Val::Null
    } else {
        Val::Json(Value::Object(obj))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_767_225_600_000;
    const LIM: Limits = Limits {
        max_payload_bytes: 4096,
    };

    fn result_json(device: &str, run_id: &str) -> String {
        format!(
            r#"{{"record":"result","schema":1,"ts":{NOW},"device_id":"{device}","board":"x86",
            "sweep_id":"s1","run_id":"{run_id}","status":"ok","model":"m","backend":"ort",
            "ep":"cpu","precision":"fp32","batch":4,"threads":0,"latency_ms_p50":1.5,
            "throttled":false,"runtime":"onnxruntime","edgebench_version":"0.1.0",
            "ort_opt_level":"all"}}"#
        )
    }

    fn rows(topic: &str, payload: &str) -> Result<Vec<Row>, Reject> {
        from_message("edgebench/v1", topic, payload.as_bytes(), LIM, NOW)
    }

    #[test]
    fn result_maps_typed_columns_and_keeps_unknown_keys_in_extra() {
        let r = rows("edgebench/v1/dev-1/result", &result_json("dev-1", "r1")).unwrap();
        assert_eq!(r.len(), 2);
        let res = &r[0];
        assert_eq!(res.table, "results");
        assert_eq!(res.cols.len(), RESULT_COLUMNS.len() + 4);
        assert_eq!(res.get("batch"), Some(&Val::Int(4)));
        assert_eq!(res.get("latency_ms_p50"), Some(&Val::Real(1.5)));
        assert_eq!(res.get("throttled"), Some(&Val::Bool(false)));
        assert_eq!(res.get("error"), Some(&Val::Null));
        assert_eq!(res.get("time"), Some(&Val::Time(NOW)));
        assert_eq!(
            res.get("extra"),
            Some(&Val::Json(serde_json::json!({"ort_opt_level": "all"})))
        );
        assert_eq!(
            res.get("source"),
            Some(&Val::Text("mqtt:edgebench/v1/dev-1/result".into()))
        );
        assert_eq!(r[1].table, "devices");
        assert_eq!(r[1].get("board"), Some(&Val::Text("x86".into())));
    }

    #[test]
    fn bad_inputs_are_named() {
        let kind = |t: &str, p: &str| rows(t, p).unwrap_err().kind();
        assert_eq!(kind("edgebench/v1/d/result", "{nope"), "not_json");
        assert_eq!(kind("edgebench/v1/d/result", "[1]"), "not_object");
        let r = result_json("d", "r");
        assert_eq!(
            kind(
                "edgebench/v1/d/result",
                &r.replace("\"schema\":1", "\"schema\":99")
            ),
            "schema"
        );
        assert_eq!(
            kind(
                "edgebench/v1/d/result",
                &r.replace("\"batch\":4", "\"batch\":\"four\"")
            ),
            "wrong_type"
        );
        assert_eq!(
            kind(
                "edgebench/v1/d/result",
                &r.replace("\"batch\":4", "\"batch\":4.5")
            ),
            "wrong_type"
        );
        assert_eq!(kind("edgebench/v1/other/result", &r), "device_mismatch");
        assert_eq!(kind("edgebench/v1/Bad_Id/result", &r), "topic");
        assert_eq!(kind("edgebench/v1/all/result", &r), "topic");
        assert_eq!(kind("edgebench/v1/d/nonsense", &r), "topic");
        assert_eq!(kind("other/v1/d/result", &r), "topic");
        assert_eq!(
            kind("edgebench/v1/d/result", &r.replace("\"run_id\":\"r\",", "")),
            "missing_key"
        );
        assert_eq!(
            kind("edgebench/v1/d/summary", &r),
            "record_kind",
            "a result on the summary topic"
        );
        let big = format!("{{\"x\":\"{}\"}}", "a".repeat(5000));
        assert_eq!(kind("edgebench/v1/d/result", &big), "too_large");
        let e = rows(
            "edgebench/v1/d/result",
            &r.replace("\"batch\":4", "\"batch\":\"four\""),
        )
        .unwrap_err();
        assert!(e.to_string().contains("`batch` must be an integer"), "{e}");
    }

    #[test]
    fn summary_gets_a_stable_id_when_the_record_has_none() {
        let s = format!(
            r#"{{"record":"summary","schema":1,"ts":{NOW},"device_id":"d","board":"b","sweep_id":"s1",
            "model":"m","backend":"ort","ep":"cpu","precision":"fp32","threads":2,"knee_fraction":0.9,
            "curve":"1:2.0","edgebench_version":"0.1.0","gain_b1":1.5}}"#
        );
        let r = rows("edgebench/v1/d/summary", &s).unwrap();
        assert_eq!(
            r[0].get("summary_id"),
            Some(&Val::Text("s1/m/ort/cpu/fp32/t2".into()))
        );
        assert_eq!(
            r[0].get("extra"),
            Some(&Val::Json(serde_json::json!({"gain_b1": 1.5})))
        );
        let with_id = s.replace("\"threads\":2", "\"threads\":2,\"summary_id\":\"given\"");
        let r = rows("edgebench/v1/d/summary", &with_id).unwrap();
        assert_eq!(r[0].get("summary_id"), Some(&Val::Text("given".into())));
    }

    #[test]
    fn status_info_sweep_and_telemetry() {
        let r = rows("edgebench/v1/d/status", "offline").unwrap();
        assert_eq!(r[0].get("online"), Some(&Val::Bool(false)));
        let r = rows(
            "edgebench/v1/d/info",
            r#"{"board":"rpi5","device_id":"d","runtimes":[1]}"#,
        )
        .unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].get("board"), Some(&Val::Text("rpi5".into())));
        let idle = rows(
            "edgebench/v1/d/sweep/state",
            r#"{"ts":5,"device_id":"d","state":"idle","done":0,"total":0,"queued":0}"#,
        )
        .unwrap();
        assert_eq!(idle.len(), 1, "idle: only the device touch");
        let run = rows(
            "edgebench/v1/d/sweep/state",
            r#"{"ts":5,"device_id":"d","state":"running","sweep_id":"s","done":1,"total":4,"queued":0,"eta_s":3.5}"#,
        )
        .unwrap();
        assert_eq!(run[0].table, "sweeps");
        assert_eq!(run[0].get("eta_s"), Some(&Val::Real(3.5)));
        let t = rows(
            "edgebench/v1/d/telemetry",
            r#"{"ts":7,"device_id":"d","temp_c":51.5,"temp_c_cpu":51.5,"mem_available_mb":900}"#,
        )
        .unwrap();
        assert_eq!(t[0].get("mem_available_mb"), Some(&Val::Int(900)));
        assert_eq!(
            t[0].get("extra"),
            Some(&Val::Json(serde_json::json!({"temp_c_cpu": 51.5})))
        );
    }

    #[test]
    fn lines_from_a_results_file() {
        let r = from_line(&result_json("d", "r9"), "import:x.jsonl", NOW).unwrap();
        assert_eq!(r[0].get("run_id"), Some(&Val::Text("r9".into())));
        assert_eq!(r[1].table, "devices");
        assert_eq!(from_line("", "f", NOW).unwrap_err().kind(), "not_json");
    }
}
