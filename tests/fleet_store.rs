//! The fleet store against real engines: SQLite files and a real PostgreSQL server
//! (Debian's binaries, a temp cluster started by the test). Migrations from an empty
//! store and from the previous version, refusal of a newer schema, idempotent upserts,
//! records read back as they arrived.

#[path = "common/broker.rs"]
mod broker;
#[path = "common/postgres.rs"]
mod pg;

use edgebench::fleet::ingest::{self, Limits};
use edgebench::fleet::{schema, store, Filter};
use serde_json::{json, Value};

const NOW: i64 = 1_767_225_600_000;

fn result(device: &str, run_id: &str, model: &str, ts: i64) -> Value {
    json!({"record":"result","schema":1,"ts":ts,"device_id":device,"board":"x86-desk",
        "sweep_id":"s1","run_id":run_id,"status":"ok","model":model,"backend":"ort",
        "ep":"cpu","precision":"fp32","batch":4,"threads":0,"latency_ms_p50":1.25,
        "throughput_ips":3200.5,"throttled":false,"runtime":"onnxruntime",
        "runtime_version":"1.32.0","edgebench_version":"0.1.0","ort_graph_opt":"all"})
}

fn summary(device: &str) -> Value {
    json!({"record":"summary","schema":1,"ts":NOW,"device_id":device,"board":"x86-desk",
        "sweep_id":"s1","model":"m","backend":"ort","ep":"cpu","precision":"fp32","threads":0,
        "knee_batch":4,"peak_throughput_ips":3200.5,"peak_batch":8,"knee_fraction":0.9,
        "curve":"1:900.000,4:3000.000,8:3200.500","edgebench_version":"0.1.0","gain_b4":1.5})
}

fn msg_rows(topic: &str, v: &Value) -> Vec<ingest::Row> {
    ingest::from_message(
        "edgebench/v1",
        topic,
        v.to_string().as_bytes(),
        Limits {
            max_payload_bytes: 1 << 20,
        },
        NOW,
    )
    .unwrap()
}

/// The same checks on any engine.
fn exercise(url: &str) {
    let mut s = store::open(url).unwrap();
    assert_eq!(s.schema_version().unwrap(), schema::VERSION);
    for t in [
        "devices",
        "results",
        "summaries",
        "sweeps",
        "telemetry",
        "rejects",
    ] {
        assert_eq!(s.count(t).unwrap(), 0, "{t} empty");
    }
    let r1 = result("board-a", "r1", "m", NOW);
    let rows = msg_rows("edgebench/v1/board-a/result", &r1);
    assert_eq!(
        s.apply(&rows).unwrap(),
        vec![true, true],
        "new result, new device"
    );
    // Redelivery: nothing new, device touched again (same time: not newer, no change).
    assert!(!s.apply(&rows).unwrap()[0], "duplicate run_id is not new");
    let sum = msg_rows("edgebench/v1/board-a/summary", &summary("board-a"));
    assert!(s.apply(&sum).unwrap()[0]);
    assert!(!s.apply(&sum).unwrap()[0], "summary upsert on its id");
    let more: Vec<ingest::Row> = (2..6)
        .flat_map(|i| {
            msg_rows(
                "edgebench/v1/board-b/result",
                &result("board-b", &format!("r{i}"), "other", NOW + i),
            )
        })
        .collect();
    s.apply(&more).unwrap();
    let tel = msg_rows(
        "edgebench/v1/board-a/telemetry",
        &json!({"ts": NOW, "device_id": "board-a", "temp_c": 50.5, "temp_c_cpu": 50.5, "mem_available_mb": 800}),
    );
    s.apply(&tel).unwrap();
    let st = msg_rows(
        "edgebench/v1/board-a/sweep/state",
        &json!({"ts": NOW + 5, "device_id": "board-a", "state": "done", "sweep_id": "s1", "done": 3, "total": 3, "queued": 0}),
    );
    s.apply(&st).unwrap();
    let older = msg_rows(
        "edgebench/v1/board-a/sweep/state",
        &json!({"ts": NOW + 1, "device_id": "board-a", "state": "running", "sweep_id": "s1", "done": 1, "total": 3, "queued": 0}),
    );
    s.apply(&older).unwrap();
    let status = ingest::from_message(
        "edgebench/v1",
        "edgebench/v1/board-a/status",
        b"online",
        Limits {
            max_payload_bytes: 100,
        },
        NOW + 10,
    )
    .unwrap();
    s.apply(&status).unwrap();
    let why = ingest::Reject::NotJson("x".into());
    for i in 0..5 {
        s.apply(&[ingest::reject_row(
            "edgebench/v1/x/result",
            &why,
            format!("bad{i}").as_bytes(),
            NOW,
        )])
        .unwrap();
    }
    assert_eq!(s.prune(None, 3).unwrap(), (0, 2), "rejects bounded to 3");
    assert_eq!(
        s.prune(Some(NOW + 1), 3).unwrap().0,
        1,
        "telemetry retention"
    );

    assert_eq!(s.count("results").unwrap(), 5);
    assert_eq!(s.count("summaries").unwrap(), 1);
    assert_eq!(s.count("devices").unwrap(), 2);
    assert_eq!(s.count("sweeps").unwrap(), 1);
    assert_eq!(s.count("rejects").unwrap(), 3);

    // Read back exactly what arrived (unknown keys from `extra` included).
    let got = s
        .results(&Filter {
            device_id: Some("board-a".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(got, vec![r1.clone()]);
    let f = Filter {
        model: Some("other".into()),
        since_ms: Some(NOW + 3),
        limit: Some(2),
        ..Default::default()
    };
    let ids: Vec<String> = s
        .results(&f)
        .unwrap()
        .iter()
        .map(|v| v["run_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["r3", "r4"]);
    let mut want_sum = summary("board-a");
    want_sum["summary_id"] = json!("s1/m/ort/cpu/fp32/t0");
    assert_eq!(s.summaries(&Filter::default()).unwrap(), vec![want_sum]);
    let (recs, bad) = store::records(s.as_mut(), &Filter::default()).unwrap();
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(recs.len(), 6);
    drop(s);

    // Reopening applies nothing more.
    let mut s = store::open(url).unwrap();
    assert_eq!(s.schema_version().unwrap(), schema::VERSION);
    assert_eq!(s.count("results").unwrap(), 5);
}

#[test]
fn sqlite_store_round_trip() {
    let d = tempfile::tempdir().unwrap();
    exercise(&format!(
        "sqlite:{}",
        d.path().join("fleet.sqlite").display()
    ));
}

#[test]
fn postgres_store_round_trip() {
    let pg = pg::Postgres::start();
    exercise(&pg.new_db("roundtrip"));
    // The sweep kept its latest state, not the late older one.
    assert_eq!(
        pg.psql("roundtrip", "SELECT state || ' ' || done FROM sweeps"),
        "done 3"
    );
    assert_eq!(
        pg.psql(
            "roundtrip",
            "SELECT online FROM devices WHERE device_id = 'board-a'"
        ),
        "t"
    );
    // Grafana-style SQL: time is a real timestamp.
    assert_eq!(
        pg.psql(
            "roundtrip",
            "SELECT to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS') FROM results WHERE run_id = 'r1'"
        ),
        "2026-01-01 00:00:00.000"
    );
    assert_eq!(
        pg.psql(
            "roundtrip",
            "SELECT extra->>'ort_graph_opt' FROM results WHERE run_id = 'r1'"
        ),
        "all"
    );
}

fn upgrade_from_previous(url: &str) {
    let prev = schema::VERSION - 1;
    let mut s = store::open_at(url, prev).unwrap();
    assert_eq!(s.schema_version().unwrap(), prev);
    let rows = msg_rows("edgebench/v1/old/result", &result("old", "kept", "m", NOW));
    s.apply(&rows).unwrap();
    assert!(
        s.count("telemetry").is_err(),
        "telemetry arrives in version 2"
    );
    drop(s);
    let mut s = store::open(url).unwrap();
    assert_eq!(s.schema_version().unwrap(), schema::VERSION);
    assert_eq!(s.results(&Filter::default()).unwrap().len(), 1, "data kept");
    assert_eq!(s.count("telemetry").unwrap(), 0);
}

fn refuses_newer(url: &str, insert: impl FnOnce()) {
    drop(store::open(url).unwrap());
    insert();
    let e = format!(
        "{:#}",
        store::open(url).err().expect("a newer schema is refused")
    );
    assert!(e.contains("newer than this edgebench knows"), "{e}");
}

#[test]
fn sqlite_migrations_from_previous_version_and_newer_refused() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("f.sqlite");
    let url = format!("sqlite:{}", p.display());
    upgrade_from_previous(&url);
    refuses_newer(&url, || rusqlite_exec(&p).unwrap());
}

/// Marks a SQLite store as written by a future version.
fn rusqlite_exec(p: &std::path::Path) -> Result<(), String> {
    let c = rusqlite::Connection::open(p).map_err(|e| e.to_string())?;
    c.execute(
        "INSERT INTO edgebench_schema (version, name, applied_at) VALUES (99, 'future', 'x')",
        [],
    )
    .map_err(|e| e.to_string())?;
    Ok(())
}

#[test]
fn postgres_migrations_from_previous_version_and_newer_refused() {
    let pg = pg::Postgres::start();
    let url = pg.new_db("upgrade");
    upgrade_from_previous(&url);
    refuses_newer(&url, || {
        pg.psql(
            "upgrade",
            "INSERT INTO edgebench_schema (version, name, applied_at) VALUES (99, 'future', 'x')",
        );
    });
}
