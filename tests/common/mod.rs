//! Shared helpers for integration tests: the built binary, the real ONNX Runtime
//! library fetched by `make test`, the committed tiny models, temp configs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_edgebench"))
}

/// The current ONNX Runtime library (`make test` fetches it).
pub fn ort_lib() -> PathBuf {
    let p = root().join(".deps/onnxruntime/lib/libonnxruntime.so");
    assert!(
        p.is_file(),
        "{} is missing: run `make test` (or `make deps`) to fetch ONNX Runtime",
        p.display()
    );
    p
}

/// An older ONNX Runtime library (`make test` fetches it; path in EDGEBENCH_ORT_OLD).
pub fn ort_old_lib() -> PathBuf {
    let p = std::env::var_os("EDGEBENCH_ORT_OLD")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".deps/onnxruntime-1.19.2/lib/libonnxruntime.so"));
    let p = if p.is_absolute() { p } else { root().join(p) };
    assert!(
        p.is_file(),
        "{} is missing: run `make test` to fetch the older ONNX Runtime",
        p.display()
    );
    p
}

pub fn fixture_models() -> PathBuf {
    root().join("tests/fixtures/models")
}

/// The configuration a test daemon starts from: board `dev` on the broker at
/// `127.0.0.1:port`, the real ONNX Runtime and the committed tiny models, its store at
/// `store`, telemetry from the Jetson Orin Nano fixture every 0.3 s, fast reconnects
/// and a tiny protocol. `extra` (sweeps, other sections) is appended.
pub fn daemon_toml(dev: &str, port: u16, store: &Path, extra: &str) -> String {
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
[telemetry]
sysroot = "{sysroot}"
[mqtt]
host = "127.0.0.1"
port = {port}
telemetry_interval_s = 0.3
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
{extra}"#,
        lib = ort_lib().display(),
        models = fixture_models().display(),
        store = store.display(),
        sysroot = root().join("tests/fixtures/sys/jetson-orin-nano").display(),
    )
}

/// A temp dir with `edgebench.toml`: tiny protocol, fixture models, given library,
/// plus `extra` TOML appended.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new(lib: &Path, extra: &str) -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = format!(
            r#"
[onnxruntime]
library = "{lib}"
[models]
dir = "{models}"
[store]
dir = "{store}"
[protocol]
warmup_runs = 2
warmup_s = 0.0
min_runs = 10
min_s = 0.05
max_s = 2.0
cooldown_max_s = 0.0
{extra}
"#,
            lib = lib.display(),
            models = fixture_models().display(),
            store = dir.path().join("store").display(),
        );
        std::fs::write(dir.path().join("edgebench.toml"), cfg).expect("write config");
        Env { dir }
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("edgebench.toml")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs the binary with `--config` after the subcommand, in the temp dir, with a
    /// clean environment (no EDGEBENCH__* or ORT_DYLIB_PATH from the caller).
    pub fn run(&self, sub: &str, args: &[&str]) -> Output {
        let mut c = Command::new(bin());
        c.current_dir(self.dir.path())
            .arg(sub)
            .arg("--config")
            .arg(self.config())
            .args(args);
        scrub(&mut c);
        c.output().expect("run edgebench")
    }
}

/// Removes variables that would change what the binary loads.
pub fn scrub(c: &mut Command) {
    for (k, _) in std::env::vars() {
        if k.starts_with("EDGEBENCH__") || k == "ORT_DYLIB_PATH" {
            c.env_remove(k);
        }
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Parses JSON Lines.
pub fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

pub fn results(recs: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    recs.iter().filter(|r| r["record"] == "result").collect()
}
pub fn summaries(recs: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    recs.iter().filter(|r| r["record"] == "summary").collect()
}
