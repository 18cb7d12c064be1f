//! `edgebench collect` as a child process of a test, and bulk publishing with
//! `mosquitto_pub -l`.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use super::broker::{signal, wait_until};

/// A collector of this test.
pub struct Collector {
    pub child: Child,
    pub log: PathBuf,
    pub config: PathBuf,
    pub db: String,
}

/// Writes a collector config for the broker on `port`.
pub fn write_config(dir: &Path, name: &str, port: u16, collect: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!(
            "[mqtt]\nhost = \"127.0.0.1\"\nport = {port}\nkeepalive_s = 5\nbackoff_min_s = 0.1\n\
             backoff_max_s = 1.0\n[collect]\nflush_interval_ms = 50\nstore_backoff_max_s = 1.0\n{collect}\n"
        ),
    )
    .expect("write collector config");
    p
}

impl Collector {
    /// Starts `edgebench collect --config <config> --db <db>` and waits until it is
    /// connected to the broker.
    pub fn start(config: &Path, db: &str, log: &Path) -> Collector {
        let c = Collector {
            child: spawn(config, db, log),
            log: log.to_path_buf(),
            config: config.to_path_buf(),
            db: db.to_string(),
        };
        c.wait_connected(1);
        c
    }

    /// Waits for the n-th "connected" line of the log.
    pub fn wait_connected(&self, n: usize) {
        let ok = wait_until(Duration::from_secs(20), || {
            self.log().matches("collect: connected to").count() >= n
        });
        assert!(ok, "collector never connected:\n{}", self.log());
        // The subscription follows the connection acknowledgement at once; give the
        // broker a moment to register it.
        std::thread::sleep(Duration::from_millis(300));
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again (same config, store and client id: same broker session).
    pub fn restart(&mut self) {
        let before = self.log().matches("collect: connected to").count();
        self.child = spawn(&self.config, &self.db, &self.log);
        self.wait_connected(before + 1);
    }

    /// SIGTERM; asserts a clean exit within 15 s.
    pub fn stop(&mut self) {
        signal(self.child.id(), libc::SIGTERM);
        let mut st = None;
        wait_until(Duration::from_secs(15), || {
            st = self.child.try_wait().ok().flatten();
            st.is_some()
        });
        let st = st.unwrap_or_else(|| panic!("collector did not stop:\n{}", self.log()));
        assert!(st.success(), "collector exit {st}:\n{}", self.log());
    }

    /// "N messages received" of the final log line (after [`Collector::stop`]).
    pub fn received(&self) -> u64 {
        let log = self.log();
        let line = log
            .lines()
            .rev()
            .find(|l| l.contains("collect: stopped;"))
            .unwrap_or_else(|| panic!("no final line:\n{log}"));
        line.split("stopped; ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unreadable: {line}"))
    }
}

/// Spawns a collector without `--db` and with `env` set (systemd's variables), not
/// waiting for anything.
pub fn spawn_with_env(config: &Path, log: &Path, env: &[(&str, &str)]) -> Child {
    let logf = std::fs::File::create(log).expect("collector log");
    let mut c = Command::new(env!("CARGO_BIN_EXE_edgebench"));
    c.arg("collect")
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(logf)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("JOURNAL_STREAM")
        .env_remove("STATE_DIRECTORY");
    if let Some(d) = config.parent() {
        c.current_dir(d);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.spawn().expect("start edgebench collect")
}

fn spawn(config: &Path, db: &str, log: &Path) -> Child {
    let logf = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("collector log");
    let mut c = Command::new(env!("CARGO_BIN_EXE_edgebench"));
    if let Some(d) = config.parent() {
        c.current_dir(d);
    }
    c.arg("collect")
        .arg("--config")
        .arg(config)
        .arg("--db")
        .arg(db)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(logf)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("JOURNAL_STREAM")
        .env_remove("STATE_DIRECTORY");
    for (k, _) in std::env::vars() {
        if k.starts_with("EDGEBENCH__") {
            c.env_remove(k);
        }
    }
    c.spawn().expect("start edgebench collect")
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `mosquitto_pub -l` publishing each line written to it to one topic (QoS 1).
pub struct LinePub {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl LinePub {
    pub fn start(port: u16, topic: &str) -> LinePub {
        let mut child = Command::new("mosquitto_pub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-q",
                "1",
                "-t",
                topic,
                "-l",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto_pub -l");
        let stdin = child.stdin.take();
        LinePub { child, stdin }
    }

    pub fn line(&mut self, s: &str) {
        let w = self.stdin.as_mut().expect("open");
        writeln!(w, "{s}").expect("write to mosquitto_pub");
        w.flush().expect("flush mosquitto_pub");
    }

    /// Closes stdin and waits until everything was published.
    pub fn finish(mut self) {
        drop(self.stdin.take());
        let st = self.child.wait().expect("wait mosquitto_pub");
        assert!(st.success(), "mosquitto_pub -l failed");
    }
}

/// Publishes `lines` to `topic` with one `mosquitto_pub -l`.
pub fn publish_lines(port: u16, topic: &str, lines: &[String]) {
    let mut p = LinePub::start(port, topic);
    for l in lines {
        p.line(l);
    }
    p.finish();
}

/// Publishes the content of `file` as one message (QoS 1).
pub fn publish_file(port: u16, topic: &str, file: &Path) {
    let st = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-q",
            "1",
            "-t",
            topic,
            "-f",
        ])
        .arg(file)
        .stderr(Stdio::null())
        .status()
        .expect("run mosquitto_pub");
    assert!(st.success(), "mosquitto_pub -f to {topic} failed");
}

/// A result record (the keys a board writes), `ts` now.
pub fn result_line(device: &str, run_id: &str) -> String {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    format!(
        r#"{{"record":"result","schema":1,"ts":{ts},"device_id":"{device}","board":"sim","sweep_id":"s","run_id":"{run_id}","status":"ok","model":"m","backend":"ort","ep":"cpu","precision":"fp32","batch":1,"threads":0,"latency_ms_p50":1.5,"runtime":"onnxruntime","edgebench_version":"0.1.0"}}"#
    )
}
