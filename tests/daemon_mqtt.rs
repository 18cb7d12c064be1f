//! The daemon against a real broker: Debian's mosquitto started by each test on a
//! free port, `mosquitto_sub` / `mosquitto_pub` as clients, the real binary, the real
//! ONNX Runtime library and the committed tiny model.

#[path = "common/broker.rs"]
mod broker;
mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use broker::{publish, wait_until, Broker, DaemonProc, Sub};
use serde_json::Value;

const DEV: &str = "board-1";
const P: &str = "edgebench/v1/board-1";
const T: Duration = Duration::from_secs(30);

/// A config for `port` with tiny protocol settings and two sweeps: `tiny` (3
/// configurations, fast) and `slow` (6 configurations, about 0.4 s each).
fn write_config(dir: &Path, name: &str, port: u16, extra: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!(
            r#"
[device]
id = "{DEV}"
[onnxruntime]
library = "{lib}"
[models]
dir = "{models}"
[store]
dir = "{store}"
[mqtt]
host = "127.0.0.1"
port = {port}
telemetry_interval_s = 0.0
backoff_min_s = 0.1
backoff_max_s = 1.0
keepalive_s = 5
[protocol]
warmup_runs = 1
warmup_s = 0.0
min_runs = 5
min_s = 0.05
max_s = 2.0
cooldown_max_s = 0.0
[sweeps.tiny]
models = ["tiny_cnn"]
batches = [1, 2, 4]
eps = ["cpu"]
threads = [1]
precisions = ["fp32"]
[sweeps.slow]
models = ["tiny_cnn"]
batches = [1, 2, 3, 4, 5, 6]
eps = ["cpu"]
threads = [1]
precisions = ["fp32"]
min_s = 0.4
{extra}
"#,
            lib = common::ort_lib().display(),
            models = common::fixture_models().display(),
            store = dir.join("store").display(),
        ),
    )
    .expect("write config");
    p
}

struct Setup {
    dir: tempfile::TempDir,
    broker: Broker,
    sub: Sub,
    daemon: DaemonProc,
}

/// Broker, subscriber, daemon; returns once the daemon is `online`.
fn setup(extra: &str) -> Setup {
    let broker = Broker::start();
    let sub = Sub::start(broker.port);
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_config(dir.path(), "edgebench.toml", broker.port, extra);
    let daemon = DaemonProc::spawn(&cfg, &dir.path().join("daemon.log"), &[]);
    let online = sub.wait_for("/status", T, |m| m.payload == "online");
    assert!(online.is_some(), "daemon never online:\n{}", daemon.log());
    Setup {
        dir,
        broker,
        sub,
        daemon,
    }
}

fn cmd(port: u16, verb: &str, payload: &str) {
    publish(port, &format!("{P}/cmd/{verb}"), payload, &[]);
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Waits for the retained sweep state of `sweep_id` to reach `state`.
fn wait_state(sub: &Sub, sweep_id: &str, state: &str) -> Option<Value> {
    sub.wait_for("/sweep/state", T, |m| {
        let v = m.json();
        v["sweep_id"] == sweep_id && v["state"] == state
    })
    .map(|m| m.json())
}

fn results_of(sub: &Sub, sweep_id: &str) -> Vec<Value> {
    sub.json_on("/result")
        .into_iter()
        .filter(|r| r["sweep_id"] == sweep_id)
        .collect()
}

/// Every run id, in order, repeats kept (a set would hide duplicates).
fn run_id_list(rs: &[Value]) -> Vec<String> {
    rs.iter()
        .map(|r| r["run_id"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn run_ids(rs: &[Value]) -> BTreeSet<String> {
    rs.iter()
        .map(|r| r["run_id"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn sweep_start_gives_ok_reply_progress_one_result_per_configuration_and_a_summary() {
    let s = setup("");
    cmd(
        s.broker.port,
        "sweep-start",
        &format!(
            r#"{{"request_id": "r1", "sweep": "tiny", "models": ["tiny_cnn"], "batches": [1, 2], "expires_at": {}}}"#,
            now_ms() + 60_000
        ),
    );
    let reply = s.sub.reply("r1", T).expect("reply to r1");
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["code"], "started");
    assert_eq!(reply["total"], 2);
    let sweep_id = reply["sweep_id"].as_str().expect("sweep_id").to_string();

    let done = wait_state(&s.sub, &sweep_id, "done")
        .unwrap_or_else(|| panic!("no done state:\n{}", s.daemon.log()));
    assert_eq!(done["done"], 2);
    assert_eq!(done["total"], 2);
    assert!(
        wait_until(T, || s
            .sub
            .json_on("/summary")
            .iter()
            .any(|x| x["sweep_id"] == sweep_id.as_str())),
        "no summary"
    );

    let states = s.sub.json_on("/sweep/state");
    assert!(
        states.iter().any(|v| v["sweep_id"] == sweep_id.as_str()
            && v["state"] == "running"
            && v["done"] == 1
            && v["total"] == 2
            && v["current"].as_str().is_some_and(|c| c.contains("b2"))),
        "progress with the current configuration: {states:?}"
    );
    let results = results_of(&s.sub, &sweep_id);
    assert_eq!(results.len(), 2, "{results:?}");
    let batches: BTreeSet<u64> = results.iter().filter_map(|r| r["batch"].as_u64()).collect();
    assert_eq!(batches, BTreeSet::from([1, 2]));
    for r in &results {
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(r["device_id"], DEV);
        assert!(r["latency_ms_p50"].as_f64().is_some_and(|x| x > 0.0), "{r}");
    }
    assert_eq!(run_ids(&results).len(), 2);
    let summary = &s.sub.json_on("/summary")[0];
    assert_eq!(summary["model"], "tiny_cnn");
    assert!(summary["knee_batch"].as_u64().is_some(), "{summary}");
    // The results are also on disk, acknowledged.
    let store = std::fs::read_dir(s.dir.path().join("store"))
        .unwrap()
        .count();
    assert!(store >= 2, "segment and cursor files");
}

/// `"batches": "auto"` runs the knee search on the board: points labelled
/// `batch_search = "auto"` in the order the search picks (1, then 2, ...), progress
/// counting points, and a summary whose knee is one of them.
#[test]
fn batches_auto_runs_the_knee_search_over_mqtt() {
    let s = setup("[batch_search]\nmax_batch = 8\nrefine_points = 1\n");
    cmd(
        s.broker.port,
        "sweep-start",
        r#"{"request_id": "a1", "sweep": "tiny", "batches": "auto"}"#,
    );
    let reply = s.sub.reply("a1", T).expect("reply to a1");
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["batch_auto"], true, "{reply}");
    assert_eq!(reply["total"], 1, "one configuration, searched: {reply}");
    let msg = reply["message"].as_str().unwrap();
    assert!(msg.contains("batch auto"), "{msg}");
    let sweep_id = reply["sweep_id"].as_str().unwrap().to_string();

    let done = wait_state(&s.sub, &sweep_id, "done")
        .unwrap_or_else(|| panic!("no done state:\n{}", s.daemon.log()));
    assert!(
        wait_until(T, || s
            .sub
            .json_on("/summary")
            .iter()
            .any(|x| x["sweep_id"] == sweep_id.as_str())),
        "no summary:\n{}",
        s.daemon.log()
    );
    let results = results_of(&s.sub, &sweep_id);
    let batches: Vec<u64> = results
        .iter()
        .map(|r| r["batch"].as_u64().unwrap())
        .collect();
    assert!(results.len() >= 2, "{batches:?}");
    assert_eq!(&batches[..2], &[1, 2], "growth starts at 1, then doubles");
    assert!(batches.iter().all(|b| *b <= 8), "max_batch: {batches:?}");
    for r in &results {
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(r["batch_search"], "auto", "{r}");
    }
    assert_eq!(run_ids(&results).len(), results.len(), "distinct run ids");
    // The end state counts the points measured.
    assert_eq!(done["done"].as_u64(), Some(results.len() as u64), "{done}");
    assert_eq!(done["total"].as_u64(), Some(results.len() as u64), "{done}");
    // While running, `current` named the point being measured (its own batch).
    let states = s.sub.json_on("/sweep/state");
    assert!(
        states.iter().any(|v| v["sweep_id"] == sweep_id.as_str()
            && v["state"] == "running"
            && v["current"].as_str().is_some_and(|c| c.contains(" b2 "))),
        "{states:?}"
    );
    let summary = s
        .sub
        .json_on("/summary")
        .into_iter()
        .find(|x| x["sweep_id"] == sweep_id.as_str())
        .unwrap();
    let knee = summary["knee_batch"].as_u64().expect("knee");
    assert!(batches.contains(&knee), "knee {knee} among {batches:?}");
}

#[test]
fn kill_9_leaves_offline_retained_on_status() {
    let mut s = setup("");
    s.daemon.kill9();
    // A client connecting afterwards gets the Last Will, retained.
    let late = Sub::start(s.broker.port);
    let st = late
        .wait_for("/status", T, |m| m.retained)
        .expect("retained status");
    assert_eq!(st.payload, "offline");
    assert_eq!(st.topic, format!("{P}/status"));
}

#[test]
fn sigterm_publishes_offline_and_exits_zero() {
    let mut s = setup("");
    let st = s
        .daemon
        .stop_with(libc::SIGTERM, Duration::from_secs(15))
        .expect("daemon exits on SIGTERM");
    assert!(st.success(), "exit status {st:?}:\n{}", s.daemon.log());
    assert!(s
        .sub
        .wait_for("/status", T, |m| m.payload == "offline")
        .is_some());
    let late = Sub::start(s.broker.port);
    let st = late.wait_for("/status", T, |m| m.retained).unwrap();
    assert_eq!(st.payload, "offline");
}

#[test]
fn sigterm_during_a_sweep_keeps_results_and_records_the_interruption() {
    let mut s = setup("");
    cmd(
        s.broker.port,
        "sweep-start",
        r#"{"request_id":"r1","sweep":"slow"}"#,
    );
    let sweep_id = s.sub.reply("r1", T).unwrap()["sweep_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(wait_until(T, || !results_of(&s.sub, &sweep_id).is_empty()));
    let st = s
        .daemon
        .stop_with(libc::SIGTERM, Duration::from_secs(25))
        .expect("stops at a safe point");
    assert!(st.success(), "{st:?}:\n{}", s.daemon.log());
    let results = results_of(&s.sub, &sweep_id);
    assert!(results.len() < 6, "stopped early: {}", results.len());
    let state = wait_state(&s.sub, &sweep_id, "interrupted").expect("interrupted state");
    let last = results.last().unwrap();
    if last["status"] == "ok" {
        // The stop came between two configurations (while the last record was being
        // synced): nothing was cut, every measured configuration is there.
        assert_eq!(state["done"], results.len(), "{state}");
    } else {
        assert_eq!(last["status"], "interrupted", "{last}");
    }
    assert!(results[..results.len() - 1]
        .iter()
        .all(|r| r["status"] == "ok"));
    assert_eq!(s.sub.on("/status").last().unwrap().payload, "offline");
}

#[test]
fn broker_killed_mid_sweep_and_restarted_loses_no_result() {
    let mut broker = Broker::start();
    // A persistent session: the broker keeps messages for it across its restart.
    let sub = Sub::persistent(broker.port, "test-persistent-sub");
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "edgebench.toml", broker.port, "");
    let daemon = DaemonProc::spawn(&cfg, &dir.path().join("daemon.log"), &[]);
    assert!(sub
        .wait_for("/status", T, |m| m.payload == "online")
        .is_some());
    cmd(
        broker.port,
        "sweep-start",
        r#"{"request_id":"r1","sweep":"slow"}"#,
    );
    let sweep_id = sub.reply("r1", T).unwrap()["sweep_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(wait_until(T, || !results_of(&sub, &sweep_id).is_empty()));
    // The subscriber's session is in the broker's last autosave (every second).
    std::thread::sleep(Duration::from_millis(1200));

    // A crash, not a clean stop: SIGTERM would let the broker save its state.
    broker.kill9();
    let before = results_of(&sub, &sweep_id).len();
    // The sweep goes on while the broker is away: results pile up in the store.
    std::thread::sleep(Duration::from_millis(1500));
    broker.restart();

    let all = wait_until(Duration::from_secs(40), || {
        run_ids(&results_of(&sub, &sweep_id)).len() == 6
    });
    let got = run_ids(&results_of(&sub, &sweep_id));
    assert!(
        all,
        "{} of 6 results arrived ({before} before the broker stopped): {got:?}\n{}\nbroker:\n{}",
        got.len(),
        daemon.log(),
        broker.log()
    );
    let want: BTreeSet<String> = (0..6).map(|i| format!("{sweep_id}-{i:04}")).collect();
    assert_eq!(got, want);
    // At least once: a result in flight when the broker went may come twice (its
    // PUBACK lost), never more, and only within the publish window.
    let list = run_id_list(&results_of(&sub, &sweep_id));
    let dups = list.len() - got.len();
    eprintln!(
        "{} results delivered for 6 stored ({dups} duplicates)",
        list.len()
    );
    for id in &want {
        let n = list.iter().filter(|x| *x == id).count();
        assert!((1..=2).contains(&n), "{id} delivered {n} times: {list:?}");
    }
    assert!(before < 6, "the broker stopped before the sweep ended");
    assert!(
        daemon.log().contains("retrying in"),
        "the daemon saw the broker go:\n{}",
        daemon.log()
    );
    assert!(wait_state(&sub, &sweep_id, "done").is_some());
}

/// Result lines in the store directory.
fn stored_results(store: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(store) else {
        return out;
    };
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        for l in text.lines() {
            if let Ok(v) = serde_json::from_str::<Value>(l) {
                if v["record"] == "result" {
                    out.push(v);
                }
            }
        }
    }
    out
}

#[test]
fn daemon_killed_mid_sweep_delivers_earlier_results_after_restart() {
    // Broker down: the boot sweep measures into the store only.
    let mut broker = Broker::not_started("allow_anonymous true\n");
    let dir = tempfile::tempdir().unwrap();
    let boot = write_config(
        dir.path(),
        "boot.toml",
        broker.port,
        "[schedule]\non_boot = \"slow\"\n",
    );
    let mut daemon = DaemonProc::spawn(&boot, &dir.path().join("daemon.log"), &[]);
    let store = dir.path().join("store");
    assert!(
        wait_until(T, || stored_results(&store).len() >= 2),
        "no results stored:\n{}",
        daemon.log()
    );
    daemon.kill9();
    let stored = stored_results(&store);
    assert!(stored.len() < 6, "killed mid-sweep");
    let sweep_id = stored[0]["sweep_id"].as_str().unwrap().to_string();

    broker.restart();
    let sub = Sub::start(broker.port);
    let plain = write_config(dir.path(), "plain.toml", broker.port, "");
    let daemon = DaemonProc::spawn(&plain, &dir.path().join("daemon.log"), &[]);

    // Everything measured before the kill, then the interrupted configuration.
    let n = stored.len();
    let ok = wait_until(T, || results_of(&sub, &sweep_id).len() > n);
    let got = results_of(&sub, &sweep_id);
    assert!(
        ok,
        "got {} of {} results:\n{}",
        got.len(),
        n + 1,
        daemon.log()
    );
    // In order, each once: nothing of this was ever published before.
    assert_eq!(
        run_id_list(&got[..n]),
        run_id_list(&stored),
        "the measured results"
    );
    std::thread::sleep(Duration::from_millis(500));
    let got = results_of(&sub, &sweep_id);
    assert_eq!(got.len(), n + 1, "no duplicates: {:?}", run_id_list(&got));
    let interrupted: Vec<&Value> = got
        .iter()
        .filter(|r| r["status"] == "interrupted")
        .collect();
    assert_eq!(interrupted.len(), 1, "{got:?}");
    assert_eq!(
        interrupted[0]["run_id"],
        format!("{sweep_id}-{n:04}").as_str()
    );
    assert_eq!(interrupted[0]["model"], "tiny_cnn");
    assert!(interrupted[0]["error"]
        .as_str()
        .unwrap()
        .contains("stopped"));
    let state = wait_state(&sub, &sweep_id, "interrupted").expect("interrupted state");
    assert_eq!(state["done"], n);
    // Nothing is sent twice once acknowledged: a second restart publishes nothing new.
    let mut daemon = daemon;
    assert!(daemon
        .stop_with(libc::SIGTERM, Duration::from_secs(15))
        .unwrap()
        .success());
    let count = sub.on("/result").len();
    // The new daemon's own `online`, not the previous one's still in the list.
    let onlines = sub
        .on("/status")
        .iter()
        .filter(|m| m.payload == "online")
        .count();
    let _again = DaemonProc::spawn(&plain, &dir.path().join("daemon2.log"), &[]);
    assert!(wait_until(T, || {
        sub.on("/status")
            .iter()
            .filter(|m| m.payload == "online")
            .count()
            > onlines
    }));
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        sub.on("/result").len(),
        count,
        "acknowledged results resent"
    );
}

#[test]
fn hostile_and_malformed_commands_get_error_replies_and_change_nothing() {
    let s = setup("");
    let port = s.broker.port;
    let big = format!(r#"{{"request_id":"h-big","pad":"{}"}}"#, "x".repeat(20_000));
    let expired = format!(
        r#"{{"request_id":"h-exp","sweep":"tiny","expires_at":{}}}"#,
        now_ms() - 1000
    );
    let cases: Vec<(&str, String, &str)> = vec![
        ("sweep-start", big, "too_large"),
        ("reboot", r#"{"request_id":"h-verb"}"#.into(), "unknown_verb"),
        ("sweep-start", r#"{"request_id":"h-sweep","sweep":"nope"}"#.into(), "unknown_sweep"),
        ("sweep-start", r#"{"request_id":"h-model","sweep":"tiny","models":["resnet9000"]}"#.into(), "unknown_model"),
        ("sweep-start", r#"{"request_id":"h-path","sweep":"tiny","models":["../../etc/passwd"]}"#.into(), "invalid_argument"),
        ("sweep-start", r#"{"request_id":"h-abs","sweep":"tiny","models":["/etc/passwd"]}"#.into(), "invalid_argument"),
        ("sweep-start", r#"{"request_id":"h-b0","sweep":"tiny","batches":[0]}"#.into(), "invalid_argument"),
        ("sweep-start", r#"{"request_id":"h-bhuge","sweep":"tiny","batches":[100000]}"#.into(), "invalid_argument"),
        ("sweep-start", r#"{"request_id":"h-bmany","sweep":"tiny","batches":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20]}"#.into(), "invalid_argument"),
        ("sweep-start", r#"{"request_id":"h-bstr","sweep":"tiny","batches":"1,2"}"#.into(), "invalid_argument"),
        ("sweep-start", r#"{"request_id":"h-ep","sweep":"tiny","eps":["cuda"]}"#.into(), "invalid_argument"),
        ("sweep-start", r#"{"request_id":"h-field","sweep":"tiny","exec":"rm -rf /"}"#.into(), "invalid_argument"),
        ("sweep-start", expired, "expired"),
        ("sweep-cancel", r#"{"request_id":"h-cancel"}"#.into(), "not_running"),
    ];
    for (verb, payload, _) in &cases {
        cmd(port, verb, payload);
    }
    // Payloads too broken to carry a request id.
    for junk in ["{not json", "[1, 2]", r#"{"sweep":"tiny"}"#, "\u{1}\u{2}"] {
        cmd(port, "sweep-start", junk);
    }
    // Bytes that are not UTF-8 at all (a lone continuation byte, an overlong
    // sequence, 0xff), sent from a file: a command line cannot carry them.
    let junk = s.dir.path().join("junk.bin");
    std::fs::write(&junk, [b'{', 0x80, 0xc0, 0xaf, 0xff, b'}']).unwrap();
    assert!(std::str::from_utf8(&std::fs::read(&junk).unwrap()).is_err());
    let st = std::process::Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(["-t", &format!("{P}/cmd/sweep-start"), "-f"])
        .arg(&junk)
        .status()
        .unwrap();
    assert!(st.success());
    for (_, payload, code) in &cases {
        let rid = serde_json::from_str::<Value>(payload).unwrap()["request_id"]
            .as_str()
            .unwrap()
            .to_string();
        let r = s
            .sub
            .reply(&rid, T)
            .unwrap_or_else(|| panic!("no reply to {rid}:\n{}", s.daemon.log()));
        assert_eq!(r["ok"], false, "{r}");
        assert_eq!(r["code"], *code, "{rid}: {r}");
        assert!(!r["message"].as_str().unwrap().is_empty());
    }
    let anonymous = || {
        s.sub
            .json_on("/reply")
            .into_iter()
            .filter(|r| r.get("request_id").is_none())
            .collect::<Vec<_>>()
    };
    assert!(
        wait_until(T, || anonymous().len() == 5),
        "{:?}",
        anonymous()
    );
    assert!(anonymous()
        .iter()
        .all(|r| r["code"] == "bad_request" && r["ok"] == false));
    assert!(
        anonymous()
            .iter()
            .any(|r| r["message"] == "payload is not UTF-8"),
        "{:?}",
        anonymous()
    );

    // Still serving, on the fleet topic too, and nothing started.
    publish(
        port,
        "edgebench/v1/all/cmd/status-get",
        r#"{"request_id":"h-status"}"#,
        &[],
    );
    let st = s.sub.reply("h-status", T).expect("status reply");
    assert_eq!(st["ok"], true);
    assert_eq!(st["state"], "idle");
    assert!(s.sub.on("/result").is_empty());
    assert!(!s
        .sub
        .json_on("/sweep/state")
        .iter()
        .any(|v| v["state"] == "running"));
}

#[test]
fn mqtt5_response_topic_and_correlation_data_are_honoured() {
    let s = setup("");
    publish(
        s.broker.port,
        &format!("{P}/cmd/info-get"),
        r#"{"request_id":"v5"}"#,
        &[
            "-V",
            "mqttv5",
            "-D",
            "publish",
            "response-topic",
            "test/replies/app1",
            "-D",
            "publish",
            "correlation-data",
            "corr-42",
        ],
    );
    let r = s
        .sub
        .wait_for("test/replies/app1", T, |_| true)
        .expect("reply on the response topic");
    let v = r.json();
    assert_eq!(v["request_id"], "v5");
    assert_eq!(v["ok"], true);
    assert_eq!(v["device_id"], DEV);
    // The fixed reply topic gets it too, and the info is retained.
    assert!(s.sub.reply("v5", T).is_some());
    let late = Sub::start(s.broker.port);
    let info = late
        .wait_for("/info", T, |m| m.retained)
        .expect("retained info");
    assert!(info.json()["models"].as_str().unwrap().contains("tiny_cnn"));
    // Runtimes found, their versions and usable providers (issue: info lists them).
    assert!(
        info.json()["ort_version"].as_str().is_some(),
        "{}",
        info.json()
    );
    assert!(info.json()["ort_providers"]
        .as_str()
        .unwrap()
        .split(',')
        .any(|p| p == "cpu"));

    // A response topic that is a command topic is not used (no reply loops).
    publish(
        s.broker.port,
        &format!("{P}/cmd/status-get"),
        r#"{"request_id":"v5-loop"}"#,
        &[
            "-V",
            "mqttv5",
            "-D",
            "publish",
            "response-topic",
            "edgebench/v1/other/cmd/sweep-start",
        ],
    );
    assert!(s.sub.reply("v5-loop", T).is_some());
    std::thread::sleep(Duration::from_millis(300));
    assert!(s.sub.on("/other/cmd/sweep-start").is_empty());
}

#[test]
fn duplicate_request_id_gets_the_original_reply_even_after_a_restart() {
    let mut s = setup("");
    let payload = r#"{"request_id":"dup-1","sweep":"tiny"}"#;
    cmd(s.broker.port, "sweep-start", payload);
    cmd(s.broker.port, "sweep-start", payload);
    let r = s.sub.reply("dup-1", T).unwrap();
    let sweep_id = r["sweep_id"].as_str().unwrap().to_string();
    assert!(wait_state(&s.sub, &sweep_id, "done").is_some());
    let replies = |sub: &Sub| -> Vec<String> {
        sub.on("/reply")
            .into_iter()
            .filter(|m| m.json()["request_id"] == "dup-1")
            .map(|m| m.payload)
            .collect()
    };
    assert!(wait_until(T, || replies(&s.sub).len() == 2));
    let got = replies(&s.sub);
    assert_eq!(got[0], got[1], "the original reply, byte for byte");

    // Restart: the id is remembered on disk, with its reply.
    let st = s
        .daemon
        .stop_with(libc::SIGTERM, Duration::from_secs(15))
        .unwrap();
    assert!(st.success());
    let cfg = s.dir.path().join("edgebench.toml");
    let online = s.sub.on("/status").len();
    let _d = DaemonProc::spawn(&cfg, &s.dir.path().join("daemon2.log"), &[]);
    assert!(wait_until(T, || s.sub.on("/status")[online..]
        .iter()
        .any(|m| m.payload == "online")));
    cmd(s.broker.port, "sweep-start", payload);
    assert!(wait_until(T, || replies(&s.sub).len() == 3));
    assert_eq!(replies(&s.sub)[2], got[0]);
    // One sweep ran, three results, no duplicates.
    std::thread::sleep(Duration::from_millis(800));
    let results = s.sub.json_on("/result");
    let ids: Vec<&str> = results
        .iter()
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert!(results.iter().all(|r| r["sweep_id"] == sweep_id.as_str()));
    assert_eq!(run_ids(&results).len(), 3, "no run_id twice: {ids:?}");
}

#[test]
fn expired_command_starts_no_sweep() {
    let s = setup("");
    cmd(
        s.broker.port,
        "sweep-start",
        &format!(
            r#"{{"request_id":"old","sweep":"tiny","expires_at":{}}}"#,
            now_ms() - 5_000
        ),
    );
    let r = s.sub.reply("old", T).unwrap();
    assert_eq!(r["code"], "expired");
    assert_eq!(r["ok"], false);
    std::thread::sleep(Duration::from_millis(1000));
    assert!(s.sub.on("/result").is_empty());
    assert!(!s
        .sub
        .json_on("/sweep/state")
        .iter()
        .any(|v| v["state"] == "running"));
}

#[test]
fn second_sweep_is_queued_third_is_busy_and_cancel_stops_the_running_one() {
    let s = setup("[commands]\nqueue_depth = 1\n");
    let port = s.broker.port;
    cmd(port, "sweep-start", r#"{"request_id":"q1","sweep":"slow"}"#);
    cmd(
        port,
        "sweep-start",
        r#"{"request_id":"q2","sweep":"tiny","batches":[1]}"#,
    );
    cmd(port, "sweep-start", r#"{"request_id":"q3","sweep":"tiny"}"#);
    let r1 = s.sub.reply("q1", T).unwrap();
    let r2 = s.sub.reply("q2", T).unwrap();
    let r3 = s.sub.reply("q3", T).unwrap();
    assert_eq!(r1["code"], "started");
    assert_eq!(r2["code"], "queued", "{r2}");
    assert_eq!(r2["position"], 1);
    assert_eq!(r3["code"], "busy", "{r3}");
    assert_eq!(r3["ok"], false);
    let first = r1["sweep_id"].as_str().unwrap().to_string();
    let second = r2["sweep_id"].as_str().unwrap().to_string();

    assert!(wait_until(T, || !results_of(&s.sub, &first).is_empty()));
    cmd(port, "sweep-cancel", r#"{"request_id":"c1"}"#);
    let c = s.sub.reply("c1", T).unwrap();
    assert_eq!(c["code"], "cancelling", "{c}");
    assert!(wait_state(&s.sub, &first, "cancelled").is_some());
    assert!(results_of(&s.sub, &first).len() < 6);
    // The queued one runs next.
    assert!(wait_state(&s.sub, &second, "done").is_some());
    assert_eq!(results_of(&s.sub, &second).len(), 1);
}

#[test]
fn password_file_right_credentials_connect_wrong_ones_are_logged_and_retried() {
    let broker = Broker::start_with_password("board", "right-pass");
    let auth = ["-u", "board", "-P", "right-pass"];
    let sub = Sub::start_opts(broker.port, None, &auth);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("good"), "right-pass\n").unwrap();
    std::fs::write(dir.path().join("bad"), "wrong-pass\n").unwrap();
    private(&dir.path().join("good"));
    private(&dir.path().join("bad"));
    let good = write_config(dir.path(), "good.toml", broker.port, "");
    let text = std::fs::read_to_string(&good).unwrap().replace(
        "keepalive_s = 5",
        &format!(
            "keepalive_s = 5\nusername = \"board\"\nallow_plaintext_password = true\npassword_file = \"{}\"",
            dir.path().join("good").display()
        ),
    );
    std::fs::write(&good, &text).unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        text.replace("\"board-1\"", "\"board-2\"")
            .replace(
                &*dir.path().join("good").display().to_string(),
                &dir.path().join("bad").display().to_string(),
            )
            .replace("backoff_max_s = 1.0", "backoff_max_s = 2.0"),
    )
    .unwrap();

    let d_good = DaemonProc::spawn(&good, &dir.path().join("good.log"), &[]);
    let d_bad = DaemonProc::spawn(&bad, &dir.path().join("bad.log"), &[]);
    assert!(
        sub.wait_for("/status", T, |m| m.topic == format!("{P}/status")
            && m.payload == "online")
            .is_some(),
        "right credentials connect:\n{}",
        d_good.log()
    );
    let retries = |log: &str| log.matches("refused the connection").count();
    assert!(
        wait_until(T, || retries(&d_bad.log()) >= 3),
        "wrong credentials retried:\n{}",
        d_bad.log()
    );
    let log = d_bad.log();
    assert!(
        log.contains("check mqtt.username and mqtt.password_file"),
        "{log}"
    );
    // Backoff: the announced delays grow.
    let delays: Vec<f64> = log
        .lines()
        .filter_map(|l| l.split("retrying in ").nth(1))
        .filter_map(|r| r.split(' ').next()?.parse().ok())
        .collect();
    assert!(delays.len() >= 3, "{log}");
    assert!(delays[2] > delays[0], "delays grow: {delays:?}");
    assert!(sub
        .on("/board-2/status")
        .iter()
        .all(|m| m.payload != "online"));
}

/// `chmod 600`: secrets readable by others are refused.
fn private(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, made here.
fn make_certs(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut a = vec!["req", "-x509"];
    a.extend(ec);
    a.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=edgebench-test-ca",
    ]);
    openssl(dir, &a);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    for (name, cn) in [("server", "/CN=127.0.0.1"), ("client", "/CN=board-1")] {
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        let crt = format!("{name}.crt");
        let mut a = vec!["req"];
        a.extend(ec);
        a.extend(["-keyout", &key, "-out", &csr, "-subj", cn]);
        openssl(dir, &a);
        let mut a = vec![
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "2",
        ];
        if name == "server" {
            a.extend(["-extfile", "san.ext"]);
        }
        openssl(dir, &a);
        private(&dir.join(&key));
    }
}

#[test]
fn tls_with_a_ca_and_a_client_certificate() {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let c = |f: &str| certs.path().join(f).display().to_string();
    let tls_port = broker::free_port();
    // A plain listener for the test's subscriber, a TLS one requiring client certs.
    let broker = Broker::start_with(&format!(
        "allow_anonymous true\nlistener {tls_port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n",
        c("ca.crt"),
        c("server.crt"),
        c("server.key")
    ));
    let sub = Sub::start(broker.port);
    let dir = tempfile::tempdir().unwrap();
    let tls = |ca: &str, client: bool| {
        let mut s = format!("[mqtt.tls]\nca_file = \"{ca}\"\n");
        if client {
            s += &format!(
                "cert_file = \"{}\"\nkey_file = \"{}\"\n",
                c("client.crt"),
                c("client.key")
            );
        }
        s
    };
    let good = write_config(dir.path(), "good.toml", tls_port, &tls(&c("ca.crt"), true));
    let d = DaemonProc::spawn(&good, &dir.path().join("good.log"), &[]);
    assert!(
        sub.wait_for("/status", T, |m| m.payload == "online")
            .is_some(),
        "TLS with a client certificate connects:\n{}\n{}",
        d.log(),
        broker.log()
    );
    drop(d);

    // Trusting the wrong CA: the server is refused, clearly, and retried.
    let other = tempfile::tempdir().unwrap();
    make_certs(other.path());
    let wrong = write_config(
        dir.path(),
        "wrong.toml",
        tls_port,
        &tls(&other.path().join("ca.crt").display().to_string(), true),
    );
    let d = DaemonProc::spawn(&wrong, &dir.path().join("wrong.log"), &[]);
    assert!(
        wait_until(T, || d.log().matches("TLS failed").count() >= 2),
        "{}",
        d.log()
    );
    assert!(d.log().contains("check mqtt.tls"), "{}", d.log());
}
