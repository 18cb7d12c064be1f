//! A configuration that never returns. The sweep thread really blocks: the
//! cool-down before each configuration after the first waits for a thermal zone
//! (a temp sysroot held at 95 °C) for up to an hour and checks no cancel flag, an
//! uninterruptible wait like a call into a wedged accelerator. The daemon must give
//! up on it after `watchdog.config_timeout_s`, record it, go on or stop as
//! configured, honour `sweep-cancel`, and stop feeding systemd's watchdog while
//! the thread is stuck. Real daemon, real mosquitto, real ONNX Runtime.

#[path = "common/broker.rs"]
mod broker;
mod common;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use broker::{publish, wait_until, Broker, DaemonProc, Sub};
use serde_json::Value;

const P: &str = "edgebench/v1/board-1";
const T: Duration = Duration::from_secs(30);

/// A sysroot whose only thermal zone reads `milli_c`.
fn hot_sysroot(dir: &Path) -> PathBuf {
    let z = dir.join("sysroot/sys/class/thermal/thermal_zone0");
    std::fs::create_dir_all(&z).unwrap();
    std::fs::write(z.join("type"), "cpu-thermal\n").unwrap();
    std::fs::write(z.join("temp"), "95000\n").unwrap();
    dir.join("sysroot")
}

fn cool(dir: &Path) {
    std::fs::write(
        dir.join("sysroot/sys/class/thermal/thermal_zone0/temp"),
        "30000\n",
    )
    .unwrap();
}

fn config(dir: &Path, port: u16, watchdog: &str) -> PathBuf {
    let p = dir.join("edgebench.toml");
    std::fs::write(
        &p,
        format!(
            r#"
[device]
id = "board-1"
board = "test-board"
[onnxruntime]
library = "{lib}"
[models]
dir = "{models}"
[store]
dir = "{store}"
[telemetry]
sysroot = "{sysroot}"
[mqtt]
host = "127.0.0.1"
port = {port}
telemetry_interval_s = 0.0
backoff_min_s = 0.1
backoff_max_s = 1.0
[protocol]
warmup_runs = 1
warmup_s = 0.0
min_runs = 5
min_s = 0.05
max_s = 1.0
cooldown_max_temp_c = 60.0
cooldown_max_s = 3600.0
[watchdog]
{watchdog}
[sweeps.four]
models = ["tiny_cnn"]
batches = [1, 2, 3, 4]
eps = ["cpu"]
threads = [1]
precisions = ["fp32"]
"#,
            lib = common::ort_lib().display(),
            models = common::fixture_models().display(),
            store = dir.join("store").display(),
            sysroot = hot_sysroot(dir).display(),
        ),
    )
    .unwrap();
    p
}

/// Collects systemd notification datagrams.
struct Notify {
    msgs: Arc<Mutex<Vec<String>>>,
}

impl Notify {
    fn bind(path: &Path) -> Notify {
        let sock = UnixDatagram::bind(path).expect("bind notify socket");
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let msgs = Arc::new(Mutex::new(Vec::new()));
        let m = msgs.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match sock.recv(&mut buf) {
                    Ok(n) => m
                        .lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock
                            || e.kind() == std::io::ErrorKind::TimedOut =>
                    {
                        if Arc::strong_count(&m) == 1 {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        });
        Notify { msgs }
    }

    fn pings(&self) -> usize {
        self.msgs
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.contains("WATCHDOG=1"))
            .count()
    }
}

struct Rig {
    dir: tempfile::TempDir,
    broker: Broker,
    sub: Sub,
    daemon: DaemonProc,
    notify: Notify,
}

fn rig(watchdog: &str) -> Rig {
    let broker = Broker::start();
    let sub = Sub::start(broker.port);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), broker.port, watchdog);
    let sock = dir.path().join("notify");
    let notify = Notify::bind(&sock);
    let daemon = DaemonProc::spawn(
        &cfg,
        &dir.path().join("daemon.log"),
        &[
            ("NOTIFY_SOCKET", sock.to_str().unwrap()),
            ("WATCHDOG_USEC", "1000000"),
        ],
    );
    assert!(
        sub.wait_for("/status", T, |m| m.payload == "online" && !m.retained)
            .is_some(),
        "never online:\n{}",
        daemon.log()
    );
    Rig {
        dir,
        broker,
        sub,
        daemon,
        notify,
    }
}

impl Rig {
    fn start(&self, rid: &str) -> String {
        publish(
            self.broker.port,
            &format!("{P}/cmd/sweep-start"),
            &format!(r#"{{"request_id":"{rid}","sweep":"four"}}"#),
            &[],
        );
        let r = self.sub.reply(rid, T).expect("sweep-start reply");
        assert_eq!(r["ok"], true, "{r}");
        r["sweep_id"].as_str().unwrap().to_string()
    }

    /// Every result of `sweep_id` received, in arrival order.
    fn results(&self, sweep_id: &str) -> Vec<Value> {
        self.sub
            .json_on("/result")
            .into_iter()
            .filter(|r| r["sweep_id"] == sweep_id)
            .collect()
    }

    fn state(&self, sweep_id: &str, state: &str) -> Option<Value> {
        self.sub
            .wait_for("/sweep/state", T, |m| {
                let v = m.json();
                v["sweep_id"] == sweep_id && v["state"] == state
            })
            .map(|m| m.json())
    }
}

#[test]
fn a_configuration_that_never_returns_times_out_stops_the_sweep_and_the_watchdog() {
    let r = rig("config_timeout_s = 2.0\non_timeout = \"stop\"\n");
    assert!(
        wait_until(T, || r.notify.pings() >= 2),
        "pings while healthy"
    );
    let id = r.start("h1");
    let failed = r.state(&id, "failed").unwrap_or_else(|| {
        panic!("no failed state:\n{}", r.daemon.log());
    });
    assert_eq!(failed["done"], 1, "{failed}");
    assert!(
        failed["error"].as_str().unwrap().contains("timed out"),
        "{failed}"
    );
    assert!(wait_until(T, || r.results(&id).len() == 2));
    let rs = r.results(&id);
    assert_eq!(rs[0]["run_id"], format!("{id}-0000"));
    assert_eq!(rs[0]["status"], "ok");
    assert_eq!(rs[1]["run_id"], format!("{id}-0001"));
    assert_eq!(rs[1]["status"], "failed");
    assert_eq!(rs[1]["stop_reason"], "timeout");
    assert_eq!(rs[1]["batch"], 2);
    assert!(rs[1]["error"]
        .as_str()
        .unwrap()
        .contains("watchdog.config_timeout_s"));

    // The thread is stuck: no more pings (they came every 0.5 s before).
    std::thread::sleep(Duration::from_millis(1200));
    let withheld = r.notify.pings();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(r.notify.pings(), withheld, "watchdog fed while stuck");
    assert!(r.daemon.log().contains("withholding the watchdog ping"));

    // Commands are still served.
    publish(
        r.broker.port,
        &format!("{P}/cmd/status-get"),
        r#"{"request_id":"st1"}"#,
        &[],
    );
    let st = r.sub.reply("st1", T).expect("status reply while stuck");
    assert_eq!(st["state"], "failed");

    // The wait ends after all: whatever the abandoned thread produces is discarded,
    // and the watchdog is fed again.
    cool(r.dir.path());
    assert!(
        wait_until(T, || r.daemon.log().contains("returned after all")),
        "{}",
        r.daemon.log()
    );
    assert!(wait_until(T, || r.notify.pings() > withheld + 2));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(r.results(&id).len(), 2, "{:?}", r.results(&id));
}

#[test]
fn on_timeout_continue_goes_on_and_cancel_gives_up_on_a_stuck_configuration() {
    let r = rig("config_timeout_s = 2.0\non_timeout = \"continue\"\ncancel_grace_s = 1.0\n");
    let id = r.start("c1");
    // 0 measured, 1 timed out, then a fresh thread goes on with 2 (stuck again).
    assert!(
        wait_until(T, || r
            .daemon
            .log()
            .contains("going on from configuration 2")),
        "{}",
        r.daemon.log()
    );
    let running = r.state(&id, "running").unwrap();
    assert_eq!(running["total"], 4);
    publish(
        r.broker.port,
        &format!("{P}/cmd/sweep-cancel"),
        &format!(r#"{{"request_id":"x1","sweep_id":"{id}"}}"#),
        &[],
    );
    assert_eq!(r.sub.reply("x1", T).unwrap()["ok"], true);
    let cancelled = r
        .state(&id, "cancelled")
        .unwrap_or_else(|| panic!("not cancelled:\n{}", r.daemon.log()));
    assert_eq!(cancelled["done"], 2, "{cancelled}");
    assert!(wait_until(T, || r.results(&id).len() == 3));
    let rs = r.results(&id);
    let got: Vec<(String, String, String)> = rs
        .iter()
        .map(|v| {
            (
                v["run_id"].as_str().unwrap().to_string(),
                v["status"].as_str().unwrap().to_string(),
                v["stop_reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let reason0 = got[0].2.clone();
    assert_eq!(
        got,
        vec![
            (format!("{id}-0000"), "ok".into(), reason0),
            (format!("{id}-0001"), "failed".into(), "timeout".into()),
            (
                format!("{id}-0002"),
                "interrupted".into(),
                "cancelled".into()
            ),
        ]
    );
    // A new sweep may start: the daemon is not wedged, only the abandoned threads are.
    cool(r.dir.path());
    let id2 = r.start("c2");
    assert!(
        r.state(&id2, "done").is_some(),
        "second sweep:\n{}",
        r.daemon.log()
    );
    assert_eq!(r.results(&id2).len(), 4);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(r.results(&id).len(), 3, "abandoned threads stored nothing");
}
