//! The Node-RED flow (integrations/node-red/flows.json) in real Node-RED 4.1 (installed
//! from npm by `integrations/node-red/install.sh`, which `make test` runs), against
//! Debian's mosquitto and two real edgebench daemons running the committed tiny models
//! on the real ONNX Runtime. The test drives the flow through its own HTTP endpoints (as
//! the dashboard button does, it builds a sweep-start with a fresh request_id, MQTT 5
//! response topic and correlation data), then checks what the daemons did against what
//! reached the flow's table, and renders the dashboard in headless Chromium.

#[path = "common/broker.rs"]
mod broker;
mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use broker::{free_port, wait_until, Broker, DaemonProc, Sub};
use serde_json::Value;

const T: Duration = Duration::from_secs(60);

fn flow_dir() -> PathBuf {
    common::root().join("integrations/node-red")
}

fn node_red_bin() -> PathBuf {
    let p = flow_dir().join("node_modules/.bin/node-red");
    assert!(
        p.is_file(),
        "{} is missing: run integrations/node-red/install.sh (make test does)",
        p.display()
    );
    p
}

/// A daemon config for board `dev` on `port`, with a fast `tiny` sweep.
fn daemon_config(dir: &Path, dev: &str, port: u16) -> PathBuf {
    let p = dir.join(format!("{dev}.toml"));
    std::fs::write(
        &p,
        format!(
            r#"
[device]
id = "{dev}"
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
[sweeps.quick]
models = ["tiny_cnn"]
batches = [1, 2]
eps = ["cpu"]
threads = [1]
precisions = ["fp32"]
"#,
            lib = common::ort_lib().display(),
            models = common::fixture_models().display(),
            store = dir.join(format!("store-{dev}")).display(),
        ),
    )
    .expect("write daemon config");
    p
}

/// Node-RED with the committed flow and settings, in its own user dir.
struct NodeRed {
    port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl NodeRed {
    fn start(mqtt_port: u16) -> NodeRed {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::copy(flow_dir().join("flows.json"), dir.path().join("flows.json"))
            .expect("copy flows.json");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("node-red.log")).expect("log file");
        let child = Command::new(node_red_bin())
            .arg("-u")
            .arg(dir.path())
            .arg("-s")
            .arg(flow_dir().join("settings.js"))
            .env("PORT", port.to_string())
            .env("HOST", "127.0.0.1")
            .env("EDGEBENCH_MQTT_HOST", "127.0.0.1")
            .env("EDGEBENCH_MQTT_PORT", mqtt_port.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start node-red");
        let nr = NodeRed { port, dir, child };
        let up = wait_until(T, || {
            nr.get("/edgebench/results").is_some() && nr.log().contains("Connected to broker")
        });
        assert!(up, "Node-RED did not come up:\n{}", nr.log());
        // Every node type of the flow comes from Node-RED or the palette that
        // package.json lists (else Node-RED waits for the missing types).
        assert!(
            !nr.log().contains("missing types") && nr.log().contains("Started flows"),
            "{}",
            nr.log()
        );
        nr
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("node-red.log")).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// GET returning JSON, or None while the server is not answering.
    fn get(&self, path: &str) -> Option<Value> {
        let out = Command::new("curl")
            .args(["-sf", "--max-time", "5"])
            .arg(self.url(path))
            .output()
            .expect("run curl (apt-get install curl; make test does)");
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// POST a JSON body; returns (HTTP status, JSON body).
    fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let out = Command::new("curl")
            .args(["-s", "--max-time", "10", "-w", "\n%{http_code}"])
            .args(["-H", "content-type: application/json", "-d", body])
            .arg(self.url(path))
            .output()
            .expect("run curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (json, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        let v = serde_json::from_str(json)
            .unwrap_or_else(|e| panic!("POST {path}: not JSON ({e}): {text}\n{}", self.log()));
        (code.trim().parse().unwrap_or(0), v)
    }

    fn state(&self) -> Value {
        self.get("/edgebench/state").unwrap_or(Value::Null)
    }

    fn table(&self) -> Vec<Value> {
        self.get("/edgebench/results")
            .and_then(|v| v["results"].as_array().cloned())
            .unwrap_or_default()
    }
}

impl Drop for NodeRed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rows_of<'a>(rows: &'a [Value], sweep_id: &str) -> Vec<&'a Value> {
    rows.iter().filter(|r| r["sweep_id"] == sweep_id).collect()
}

fn replies_to(nr: &NodeRed, request_id: &str) -> Vec<Value> {
    nr.state()["replies"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|r| r["request_id"] == request_id)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until the daemons published `n` results for `sweep_id` and the sweep is done.
fn daemon_results(sub: &Sub, sweep_id: &str, n: usize) -> Vec<Value> {
    let done = sub.wait_for("/sweep/state", T, |m| {
        let v = m.json();
        v["sweep_id"] == sweep_id && (v["state"] == "done" || v["state"] == "failed")
    });
    assert!(done.is_some(), "sweep {sweep_id} never finished");
    let mut rs = Vec::new();
    wait_until(T, || {
        rs = sub
            .json_on("/result")
            .into_iter()
            .filter(|r| r["sweep_id"] == sweep_id)
            .collect();
        rs.len() >= n
    });
    assert_eq!(rs.len(), n, "results of {sweep_id}: {rs:?}");
    rs
}

fn run_ids<'a>(rs: impl IntoIterator<Item = &'a Value>) -> BTreeSet<String> {
    rs.into_iter()
        .map(|r| r["run_id"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn flow_triggers_sweeps_matches_replies_and_fills_table_chart_status_and_alerts() {
    let _ = node_red_bin();
    let broker = Broker::start();
    let sub = Sub::start(broker.port);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut daemons = Vec::new();
    for dev in ["board-1", "board-2"] {
        let cfg = daemon_config(dir.path(), dev, broker.port);
        daemons.push(DaemonProc::spawn(
            &cfg,
            &dir.path().join(format!("{dev}.log")),
            &[],
        ));
        let online = sub.wait_for(&format!("{dev}/status"), T, |m| m.payload == "online");
        assert!(online.is_some(), "{dev} never online");
    }

    let nr = NodeRed::start(broker.port);

    // Board status from the retained status topics.
    let online = wait_until(T, || {
        let st = nr.state();
        let boards = st["boards"].as_array().cloned().unwrap_or_default();
        boards.len() == 2 && boards.iter().all(|b| b["status"] == "online")
    });
    assert!(online, "boards not online in the flow: {}", nr.state());

    // 1. One board, through the flow's HTTP endpoint (what the button does).
    let (code, sent) = nr.post(
        "/edgebench/sweep",
        r#"{"device_id": "board-1", "sweep": "tiny"}"#,
    );
    assert_eq!(code, 202, "{sent}");
    let rid = sent["request_id"].as_str().expect("request_id").to_string();
    assert!(rid.starts_with("nr-"), "{rid}");
    assert_eq!(sent["topic"], "edgebench/v1/board-1/cmd/sweep-start");
    assert_eq!(sent["response_topic"], "node-red/edgebench/replies");
    // The reply went to the flow's response topic (not the board's reply topic) and
    // was matched by its correlation data.
    let mut replies = Vec::new();
    wait_until(T, || {
        replies = replies_to(&nr, &rid);
        !replies.is_empty()
    });
    assert_eq!(replies.len(), 1, "{}", nr.state());
    let reply = &replies[0];
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["device_id"], "board-1");
    assert_eq!(reply["target"], "board-1");
    // The flow subscribes to its response topic only; the board's fixed reply topic
    // carries the same reply for 3.1.1 clients.
    let sweep_id = reply["sweep_id"].as_str().expect("sweep_id").to_string();
    let fixed = sub.reply(&rid, T).expect("reply on <prefix>/reply too");
    assert_eq!(fixed["sweep_id"], sweep_id.as_str());
    let published = daemon_results(&sub, &sweep_id, 3);
    assert!(published.iter().all(|r| r["device_id"] == "board-1"));
    let mut table = Vec::new();
    wait_until(T, || {
        table = nr.table();
        rows_of(&table, &sweep_id).len() == 3
    });
    let rows = rows_of(&table, &sweep_id);
    assert_eq!(run_ids(rows.iter().copied()), run_ids(&published));
    for r in &rows {
        let p = published
            .iter()
            .find(|x| x["run_id"] == r["run_id"])
            .unwrap();
        for k in [
            "batch",
            "latency_ms_p50",
            "throughput_ips",
            "model",
            "status",
        ] {
            assert_eq!(r[k], p[k], "{k} of {r}");
        }
    }
    let batches: BTreeSet<u64> = rows.iter().filter_map(|r| r["batch"].as_u64()).collect();
    assert_eq!(batches, BTreeSet::from([1, 2, 4]));
    assert!(
        nr.state()["alerts"]
            .as_array()
            .is_some_and(|a| a.is_empty()),
        "no alert for good runs: {}",
        nr.state()
    );

    // 2. The whole fleet, with a model whose file is missing: every board replies to
    //    the same request, each runs it, the missing model's runs fail and raise alerts.
    let (code, sent) = nr.post(
        "/edgebench/sweep",
        r#"{"sweep": "tiny", "models": ["tiny_cnn", "missing_model"], "batches": [1]}"#,
    );
    assert_eq!(code, 202, "{sent}");
    assert_eq!(sent["topic"], "edgebench/v1/all/cmd/sweep-start");
    let fleet_rid = sent["request_id"].as_str().unwrap().to_string();
    assert_ne!(fleet_rid, rid, "a fresh request_id each time");
    let mut replies = Vec::new();
    wait_until(T, || {
        replies = replies_to(&nr, &fleet_rid);
        replies.len() >= 2
    });
    let devices: BTreeSet<&str> = replies
        .iter()
        .filter_map(|r| r["device_id"].as_str())
        .collect();
    assert_eq!(
        devices,
        BTreeSet::from(["board-1", "board-2"]),
        "{replies:?}"
    );
    for reply in &replies {
        assert_eq!(reply["ok"], true, "{reply}");
        let sid = reply["sweep_id"].as_str().unwrap();
        let published = daemon_results(&sub, sid, 2);
        let failed: Vec<_> = published
            .iter()
            .filter(|r| r["status"] == "failed")
            .collect();
        assert_eq!(failed.len(), 1, "{published:?}");
        assert_eq!(failed[0]["model"], "missing_model");
        let mut table = Vec::new();
        wait_until(T, || {
            table = nr.table();
            rows_of(&table, sid).len() == 2
        });
        assert_eq!(
            run_ids(rows_of(&table, sid)),
            run_ids(&published),
            "{table:?}"
        );
        let alert_for_failed = wait_until(T, || {
            nr.state()["alerts"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|x| x["run_id"] == failed[0]["run_id"] && x["kind"] == "failed")
            })
        });
        assert!(
            alert_for_failed,
            "no alert for {}: {}",
            failed[0],
            nr.state()
        );
    }
    let alerts = nr.state()["alerts"].as_array().cloned().unwrap_or_default();
    assert_eq!(alerts.len(), 2, "one alert per failed run: {alerts:?}");
    assert!(
        !nr.log().contains("reply to an unknown request"),
        "{}",
        nr.log()
    );

    // 3. The dashboard page in real headless Chromium: the table shows the results,
    //    and its button starts a sweep (empty board field: the whole fleet, `quick`).
    let png = nr.dir.path().join("dashboard.png");
    let page = render(
        &nr,
        &png,
        &["tiny_cnn", "board-2", "missing_model"],
        "Start sweep",
    );
    assert_eq!(page["clicked"], true, "{page}");
    let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 10_000,
        "screenshot {} is {size} bytes",
        png.display()
    );
    if let Some(out) = std::env::var_os("EDGEBENCH_NODE_RED_SCREENSHOT") {
        std::fs::copy(&png, out).expect("copy the screenshot");
    }
    let mut button_replies = Vec::new();
    let answered = wait_until(T, || {
        button_replies = nr.state()["replies"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r["request_id"] != rid.as_str() && r["request_id"] != fleet_rid.as_str())
            .collect();
        button_replies.len() >= 2
    });
    assert!(
        answered,
        "the button's sweep got no replies: {}",
        nr.state()
    );
    for r in &button_replies {
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["target"], "all", "{r}");
        daemon_results(&sub, r["sweep_id"].as_str().unwrap(), 2);
    }

    // 4. A board going away shows as offline (its Last Will, retained).
    daemons[1].kill9();
    let offline = wait_until(T, || {
        nr.state()["boards"].as_array().is_some_and(|b| {
            b.iter()
                .any(|x| x["device_id"] == "board-2" && x["status"] == "offline")
        })
    });
    assert!(offline, "board-2 not offline in the flow: {}", nr.state());
}

/// Renders the dashboard page with `integrations/node-red/render.js` (headless Chromium
/// over the DevTools protocol): waits until the page text holds every word of `wait`,
/// clicks the button labelled `click`, saves a screenshot to `png`; returns its report.
fn render(nr: &NodeRed, png: &Path, wait: &[&str], click: &str) -> Value {
    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("chromium not found: apt-get install chromium (make test does)");
    let mut c = Command::new("node");
    c.arg(flow_dir().join("render.js"))
        .args(["--url", &nr.url("/dashboard/edgebench")])
        .arg("--png")
        .arg(png)
        .args([
            "--chromium",
            chromium,
            "--timeout-s",
            "60",
            "--click",
            click,
        ]);
    for w in wait {
        c.args(["--wait", w]);
    }
    let out = c.stdin(Stdio::null()).output().expect("run node render.js");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "render.js failed ({}): {}\n{stdout}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("render.js output ({e}): {stdout}"))
}
