//! Flat payloads the daemon publishes about itself: `info` (retained) and
//! `telemetry` (periodic, QoS 0). Cheap reads only: nothing here loads a runtime.

use std::path::Path;

use serde_json::{Map, Value};

use crate::bench::result::now_ms;
use crate::config::Config;
use crate::models::Zoo;

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

/// Runtimes found, their versions and the providers / delegates usable here, learned
/// from a short-lived `edgebench info --json` child process, so the idle daemon never
/// maps ONNX Runtime or TensorFlow Lite itself. Keys: `ort_*`, `tflite_*`,
/// `edgetpu_*`, `probes`; on failure `runtimes_error`.
pub fn runtimes(config_path: Option<&Path>, sets: &[String]) -> Map<String, Value> {
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
    match cmd.stdin(std::process::Stdio::null()).output() {
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

/// The `<p>/telemetry` payload: the telemetry scrape (`Telemetry::snapshot`, flat)
/// plus the daemon's own state.
pub fn telemetry(
    mut snapshot: Map<String, Value>,
    device_id: &str,
    state: &str,
    uptime_s: u64,
    unsent_bytes: u64,
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
    snapshot.insert("unsent_bytes".into(), unsent_bytes.into());
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
        let v: Value = serde_json::from_str(&telemetry(t.snapshot(), "dev", "idle", 5, 0)).unwrap();
        assert!(v["ts"].as_i64().is_some());
        assert_eq!(v["device_id"], "dev");
        assert!(v
            .as_object()
            .unwrap()
            .values()
            .all(|x| !x.is_object() && !x.is_array() && !x.is_null()));
    }
}
