//! Flat payloads the daemon publishes about itself: `info` (retained) and
//! `telemetry` (periodic, QoS 0). Cheap reads only: nothing here loads a runtime.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::bench::result::now_ms;
use crate::config::Config;
use crate::models::Zoo;
use crate::store::StoreStats;

/// The retained `<p>/info` payload.
pub fn info(cfg: &Config, zoo: &Zoo, device_id: &str, board: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("ts".into(), now_ms().into());
    m.insert("device_id".into(), device_id.into());
    m.insert("board".into(), board.into());
    m.insert("edgebench_version".into(), crate::VERSION.into());
    if let Ok(u) = nix::sys::utsname::uname() {
        m.insert(
            "kernel".into(),
            u.release().to_string_lossy().into_owned().into(),
        );
        m.insert(
            "arch".into(),
            u.machine().to_string_lossy().into_owned().into(),
        );
        m.insert(
            "hostname".into(),
            u.nodename().to_string_lossy().into_owned().into(),
        );
    }
    if let Ok(n) = std::thread::available_parallelism() {
        m.insert("cpus".into(), n.get().into());
    }
    if let Some(kb) = meminfo_kb(Path::new("/proc/meminfo"), "MemTotal:") {
        m.insert("mem_total_mb".into(), (kb / 1024).into());
    }
    m.insert("models".into(), zoo.base_names().join(",").into());
    m.insert(
        "model_sets".into(),
        zoo.sets
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(",")
            .into(),
    );
    m.insert(
        "sweeps".into(),
        cfg.sweeps
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(",")
            .into(),
    );
    let mut backends: Vec<&str> = cfg.sweeps.values().map(|s| s.backend.as_str()).collect();
    backends.sort_unstable();
    backends.dedup();
    m.insert("backends".into(), backends.join(",").into());
    // Power mode, clocks, library versions... read from the board's files under the
    // configured root (the same keys as in every result).
    m.extend(
        crate::telemetry::context::read(&crate::telemetry::SysRoot::new(&cfg.telemetry.sysroot))
            .to_map(),
    );
    m
}

/// How long the `edgebench info` child may take (a wedged driver can hang a probe).
pub const RUNTIMES_TIMEOUT: Duration = Duration::from_secs(15);

/// Runtimes found, their versions and the providers / delegates usable here, learned
/// from a short-lived `edgebench info --json` child process, so the idle daemon never
/// maps ONNX Runtime or TensorFlow Lite itself. Keys: `ort_*`, `tflite_*`,
/// `edgetpu_*`, `probes`; on failure `runtimes_error`. A child still running after
/// `timeout` is killed. Blocking: run it off the async runtime.
pub fn runtimes(
    config_path: Option<&Path>,
    sets: &[String],
    timeout: Duration,
) -> Map<String, Value> {
    let mut m = Map::new();
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            m.insert(
                "runtimes_error".into(),
                format!("cannot find own executable: {e}").into(),
            );
            return m;
        }
    };
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("info").arg("--json");
    if let Some(p) = config_path {
        cmd.arg("--config").arg(p);
    }
    for s in sets {
        cmd.arg("--set").arg(s);
    }
    match output_within(&mut cmd, timeout) {
        Ok(o) if o.status.success() => {
            match serde_json::from_slice::<Map<String, Value>>(&o.stdout) {
                Ok(all) => {
                    for (k, v) in all {
                        if k.starts_with("ort_")
                            || k.starts_with("tflite_")
                            || k.starts_with("edgetpu_")
                            || k == "probes"
                        {
                            m.insert(k, v);
                        }
                    }
                }
                Err(e) => {
                    m.insert(
                        "runtimes_error".into(),
                        format!("unreadable `edgebench info` output: {e}").into(),
                    );
                }
            }
        }
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr).trim().to_string();
            m.insert(
                "runtimes_error".into(),
                format!("`edgebench info` failed: {err}").into(),
            );
        }
        Err(e) => {
            m.insert(
                "runtimes_error".into(),
                format!("cannot run `edgebench info`: {e}").into(),
            );
        }
    }
    m
}

/// The store's state as flat keys, for `telemetry` and `status-get`:
/// `unsent_bytes`, `store_alarm` (`none`, `low_space`, `dropped`, `full`),
/// `store_dropped_bytes`, and `store_free_bytes` when known.
pub fn store_fields(st: &StoreStats) -> Vec<(&'static str, Value)> {
    let mut v = vec![
        ("unsent_bytes", st.unsent().into()),
        ("store_alarm", st.alarm.unwrap_or("none").into()),
        ("store_dropped_bytes", st.dropped_bytes.into()),
    ];
    if let Some(f) = st.free_bytes {
        v.push(("store_free_bytes", f.into()));
    }
    v
}

/// Runs `cmd` to completion, killing it after `timeout`.
fn output_within(
    cmd: &mut std::process::Command,
    timeout: Duration,
) -> std::io::Result<std::process::Output> {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Readers on their own threads, so a full pipe never blocks the child.
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let end = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {} s; killed", timeout.as_secs()),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(std::process::Output {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    })
}

/// The `<p>/telemetry` payload: the telemetry scrape (`Telemetry::snapshot`, flat)
/// plus the daemon's own state and the store's ([`store_fields`]).
pub fn telemetry(
    mut snapshot: Map<String, Value>,
    device_id: &str,
    state: &str,
    uptime_s: u64,
    store: &StoreStats,
) -> String {
    snapshot.entry("ts").or_insert_with(|| now_ms().into());
    snapshot.insert("device_id".into(), device_id.into());
    if let Some(kb) = meminfo_kb(Path::new("/proc/self/status"), "VmRSS:") {
        snapshot.insert(
            "daemon_rss_mb".into(),
            ((kb as f64 / 102.4).round() / 10.0).into(),
        );
    }
    snapshot.insert("sweep_state".into(), state.into());
    snapshot.insert("uptime_s".into(), uptime_s.into());
    for (k, v) in store_fields(store) {
        snapshot.insert(k.into(), v);
    }
    Value::Object(snapshot).to_string()
}

/// A `Key:   1234 kB` line of a /proc file, in kB.
fn meminfo_kb(path: &Path, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::Telemetry;

    #[test]
    fn reads_proc_style_lines() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("meminfo");
        std::fs::write(
            &p,
            "MemTotal:        8039416 kB\nMemFree:          512000 kB\nMemAvailable:    4000000 kB\n",
        )
        .unwrap();
        assert_eq!(meminfo_kb(&p, "MemTotal:"), Some(8_039_416));
        assert_eq!(meminfo_kb(&p, "MemAvailable:"), Some(4_000_000));
        assert_eq!(meminfo_kb(&p, "Swap:"), None);
    }

    #[test]
    fn a_child_that_hangs_is_killed_after_the_timeout() {
        let t0 = Instant::now();
        let e = output_within(
            std::process::Command::new("sleep").arg("30"),
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        assert!(t0.elapsed() < Duration::from_secs(5));
        let o = output_within(
            std::process::Command::new("echo").arg("hi"),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(o.stdout, b"hi\n");
    }

    #[test]
    fn info_carries_the_board_context_from_the_sysroot() {
        let mut cfg = Config::default();
        cfg.telemetry.sysroot = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/sys/jetson-nano"
        )
        .into();
        let zoo = Zoo {
            dir: "m".into(),
            manifest: "m/manifest.toml".into(),
            models: Vec::new(),
            sets: Default::default(),
        };
        let m = info(&cfg, &zoo, "dev", "jetson-nano");
        assert_eq!(m["nvpmodel_name"], "MAXN");
        assert_eq!(m["jetpack_release"], "4.6.1");
        assert_eq!(m["emc_mhz"], 1600.0);
        assert_eq!(m["kernel"], "4.9.253-tegra");
        assert_eq!(m["mem_total_mb"], 4_051_032 / 1024);
        assert!(m
            .values()
            .all(|v| !v.is_object() && !v.is_array() && !v.is_null()));
    }

    #[test]
    fn telemetry_is_flat() {
        let t = Telemetry::open(&Default::default(), "", "");
        let st = StoreStats {
            end: 10,
            cursor: 4,
            bytes: 10,
            segments: 1,
            free_bytes: Some(1000),
            dropped_bytes: 0,
            alarm: Some("low_space"),
        };
        let v: Value =
            serde_json::from_str(&telemetry(t.snapshot(), "dev", "idle", 5, &st)).unwrap();
        assert_eq!(v["unsent_bytes"], 6);
        assert_eq!(v["store_alarm"], "low_space");
        assert_eq!(v["store_free_bytes"], 1000);
        assert!(v["ts"].as_i64().is_some());
        assert_eq!(v["device_id"], "dev");
        assert!(v
            .as_object()
            .unwrap()
            .values()
            .all(|x| !x.is_object() && !x.is_array() && !x.is_null()));
    }
}
