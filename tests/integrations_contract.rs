//! Contract between the records (DESIGN.md section 5, src/bench/result.rs) and what the
//! integrations read from them: the Node-RED flow (record keys its functions read as
//! `rec.<key>`, the results table's columns, the chart's x / y), the Grafana dashboards
//! (record columns their SQL names, the live dashboard's result fields) and the Home
//! Assistant templates on the result topic. Each key must be a key of real records:
//! present in the records of a real `edgebench run` (the tiny model and a missing one,
//! so an `ok` and a `failed` result, and their summary), or a field the record type
//! declares (an optional key absent from these runs, such as `throttle_reasons`).
//! Renaming or dropping a record key an integration uses fails here.

mod common;

use std::collections::BTreeSet;

use common::{json_lines, ort_lib, stdout, Env};
use edgebench::bench::result::{ResultRecord, SummaryRecord};
use serde_json::Value;

fn idents(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().last();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let k: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !k.is_empty() {
            out.insert(k);
        }
    }
    out
}

/// Record keys the Node-RED flow reads: `rec.<key>` in its functions, the results
/// table's column keys and the chart's x / y (rows carry the record's key names).
fn node_red_keys() -> BTreeSet<String> {
    let text = std::fs::read_to_string(common::root().join("integrations/node-red/flows.json"))
        .expect("flows.json");
    let nodes: Vec<Value> = serde_json::from_str(&text).expect("flows.json is JSON");
    let mut keys = BTreeSet::new();
    for n in &nodes {
        match n["type"].as_str() {
            Some("function") => keys.extend(idents(n["func"].as_str().unwrap_or(""), "rec.")),
            Some("ui-table") if n["group"] == "eb-g-results" => {
                for c in n["columns"].as_array().unwrap() {
                    keys.insert(c["key"].as_str().unwrap().to_string());
                }
            }
            Some("ui-chart") => {
                for k in ["xAxisProperty", "yAxisProperty"] {
                    keys.insert(n[k].as_str().unwrap().to_string());
                }
            }
            _ => {}
        }
    }
    assert!(keys.len() >= 15, "flow keys not found: {keys:?}");
    keys
}

/// Columns of a table in the fleet store's migrations.
fn table_columns(table: &str) -> BTreeSet<String> {
    let mut cols = BTreeSet::new();
    for e in std::fs::read_dir(common::root().join("src/fleet/migrations")).unwrap() {
        let sql = std::fs::read_to_string(e.unwrap().path()).unwrap();
        let Some(start) = sql.find(&format!("CREATE TABLE {table} (")) else {
            continue;
        };
        let body = &sql[start..];
        let body = &body[..body.find("\n);").unwrap()];
        for line in body.lines().skip(1) {
            let line = line.trim();
            if line.starts_with("--") || line.starts_with("PRIMARY") {
                continue;
            }
            if let Some(c) = line.split_whitespace().next() {
                cols.insert(c.to_string());
            }
        }
    }
    assert!(!cols.is_empty(), "no table {table} in the migrations");
    cols
}

/// Record columns (results, summaries) the dashboards' SQL names, and the result
/// fields of the live dashboard.
fn grafana_keys() -> (BTreeSet<String>, BTreeSet<String>) {
    // Store-side columns that are not record keys.
    let store_only: BTreeSet<&str> = ["time", "extra", "source", "stored_at", "summary_id"].into();
    let results = table_columns("results");
    let summaries = table_columns("summaries");
    let (mut r, mut s) = (BTreeSet::new(), BTreeSet::new());
    let dir = common::root().join("integrations/grafana/dashboards");
    for sub in ["postgres", "sqlite", "mqtt"] {
        for e in std::fs::read_dir(dir.join(sub)).unwrap() {
            let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
            let d: Value = serde_json::from_str(&text).unwrap();
            for p in d["panels"].as_array().unwrap() {
                for t in p["targets"].as_array().unwrap() {
                    if let Some(topic) = t["topic"].as_str() {
                        if topic.ends_with("/result") {
                            for o in p["fieldConfig"]["overrides"].as_array().unwrap() {
                                r.insert(o["matcher"]["options"].as_str().unwrap().to_string());
                            }
                        }
                        continue;
                    }
                    let sql = t["rawSql"].as_str().or(t["queryText"].as_str()).unwrap();
                    let words: BTreeSet<&str> = sql
                        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .collect();
                    for w in words.into_iter().map(String::from) {
                        if store_only.contains(w.as_str()) {
                            continue;
                        }
                        if results.contains(&w) {
                            r.insert(w);
                        } else if summaries.contains(&w) {
                            s.insert(w);
                        }
                    }
                }
            }
        }
    }
    assert!(
        r.len() >= 15 && s.len() >= 4,
        "dashboard keys not found: {r:?} {s:?}"
    );
    (r, s)
}

/// Result keys the Home Assistant templates read on the result topic.
fn homeassistant_keys() -> BTreeSet<String> {
    use edgebench::mqtt::homeassistant::{announcements, Board, HomeAssistantConfig};
    use edgebench::mqtt::topics::Topics;
    let topics = Topics::new("edgebench/v1", "dev").unwrap();
    let cfg = HomeAssistantConfig {
        discovery: true,
        ..Default::default()
    };
    let b = Board {
        device_id: "dev",
        board: "x",
        version: "0",
    };
    let mut keys = BTreeSet::new();
    for a in announcements(&cfg, &topics, &b) {
        let v: Value = serde_json::from_str(&a.payload).unwrap();
        if v["state_topic"] == topics.result() {
            for k in ["value_template", "json_attributes_template"] {
                keys.extend(idents(v[k].as_str().unwrap_or(""), "value_json."));
            }
        }
    }
    assert!(keys.contains("latency_ms_p50"), "{keys:?}");
    keys
}

/// Whether `key` is a field the record type declares: set to null it deserializes
/// into the field (an unknown key would land in the flattened map instead, or fail).
fn declared<T: serde::de::DeserializeOwned>(
    real: &Value,
    key: &str,
    in_extra: impl Fn(&T) -> bool,
) -> bool {
    let mut v = real.clone();
    v[key] = Value::Null;
    serde_json::from_value::<T>(v).is_ok_and(|r| !in_extra(&r))
}

#[test]
fn keys_the_flow_dashboards_and_discovery_read_are_record_keys() {
    let env = Env::new(&ort_lib(), "");
    let o = env.run(
        "run",
        &[
            "--models",
            "tiny_cnn,missing_model",
            "--batch",
            "1,2",
            "--threads",
            "1",
            "--json",
            "--out",
            "/dev/null",
        ],
    );
    assert!(o.status.success(), "{}", common::stderr(&o));
    let recs = json_lines(&stdout(&o));
    let result_recs: Vec<&Value> = recs.iter().filter(|r| r["record"] == "result").collect();
    let summary_recs: Vec<&Value> = recs.iter().filter(|r| r["record"] == "summary").collect();
    assert!(result_recs.iter().any(|r| r["status"] == "ok"));
    assert!(result_recs.iter().any(|r| r["status"] == "failed"));
    assert!(!summary_recs.is_empty());
    let seen = |rs: &[&Value]| -> BTreeSet<String> {
        rs.iter()
            .flat_map(|r| r.as_object().unwrap().keys().cloned())
            .collect()
    };
    let result_keys = seen(&result_recs);
    let summary_keys = seen(&summary_recs);
    let ok = result_recs.iter().find(|r| r["status"] == "ok").unwrap();
    let is_result_key = |k: &str| {
        result_keys.contains(k) || declared::<ResultRecord>(ok, k, |r| r.extra.contains_key(k))
    };
    let is_summary_key = |k: &str| {
        summary_keys.contains(k)
            || declared::<SummaryRecord>(summary_recs[0], k, |r| r.gains.contains_key(k))
    };

    let mut missing = Vec::new();
    for k in node_red_keys() {
        if !is_result_key(&k) {
            missing.push(format!("Node-RED flow: {k}"));
        }
    }
    let (r, s) = grafana_keys();
    for k in r {
        if !is_result_key(&k) {
            missing.push(format!("Grafana (results): {k}"));
        }
    }
    for k in s {
        if !is_summary_key(&k) {
            missing.push(format!("Grafana (summaries): {k}"));
        }
    }
    for k in homeassistant_keys() {
        if !is_result_key(&k) {
            missing.push(format!("Home Assistant: {k}"));
        }
    }
    assert!(
        missing.is_empty(),
        "keys used but not in the records: {missing:?}"
    );
    // The check can fail: a key that is not a record key is caught.
    assert!(!is_result_key("latency_ms_p50_renamed"));
    assert!(!is_summary_key("knee"));
}
