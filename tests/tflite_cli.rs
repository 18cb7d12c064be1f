//! `edgebench run --backend tflite [--delegate edgetpu]` and `edgebench info`, driven as
//! a user would: a model directory with a manifest, the real TFLite library, and for the
//! Edge TPU the stand-in libedgetpu.

mod tflite_common;

use std::path::Path;
use std::process::{Command, Output};

use tflite_common::*;

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    /// Models: BlazeFace (fp32), MNIST (int8), a synthetic all-Edge-TPU model.
    fn new(a: &Assets, edgetpu_library: &Path, edgetpu_device: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let models = dir.path().join("models");
        std::fs::create_dir(&models).unwrap();
        std::fs::copy(&a.blazeface, models.join("face_detection_front.tflite")).unwrap();
        std::fs::copy(&a.mnist, models.join("MNISTnet_uint8_quant.tflite")).unwrap();
        write_model(
            &models,
            "tiny_edgetpu.tflite",
            &tflite_model(&[1, 8], 2, vec![edgetpu_op(0, 1)]),
        );
        std::fs::write(
            models.join("manifest.toml"),
            r#"
[[model]]
name = "blazeface"
task = "detection"
file = "face_detection_front.tflite"
input_name = "input"
input_shape = [1, 128, 128, 3]
[[model]]
name = "mnist"
task = "classification"
file = "MNISTnet_uint8_quant.tflite"
input_name = "input"
input_shape = [1, 28, 28, 1]
dtype = "uint8"
precision = "int8"
[[model]]
name = "tiny_edgetpu"
task = "classification"
file = "tiny_edgetpu.tflite"
input_name = "input"
input_shape = [1, 8]
precision = "int8"
"#,
        )
        .unwrap();
        let cfg = format!(
            r#"
[tflite]
library = "{lib}"
edgetpu_library = "{tpu}"
edgetpu_device = "{edgetpu_device}"
[models]
dir = "{models}"
[store]
dir = "{store}"
[protocol]
warmup_runs = 1
warmup_s = 0.0
min_runs = 5
min_s = 0.02
max_s = 2.0
cooldown_max_s = 0.0
"#,
            lib = a.library.display(),
            tpu = edgetpu_library.display(),
            models = models.display(),
            store = dir.path().join("store").display(),
        );
        std::fs::write(dir.path().join("edgebench.toml"), cfg).unwrap();
        Env { dir }
    }

    fn run(&self, sub: &str, args: &[&str]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_edgebench"));
        c.current_dir(self.dir.path())
            .arg(sub)
            .arg("--config")
            .arg(self.dir.path().join("edgebench.toml"))
            .args(args);
        for (k, _) in std::env::vars() {
            if k.starts_with("EDGEBENCH__") {
                c.env_remove(k);
            }
        }
        c.output().expect("run edgebench")
    }

    /// `run --json` and the result records.
    fn results(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let o = self.run("run", &all);
        assert!(
            o.status.success(),
            "edgebench run failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|r| r["record"] == "result")
            .collect()
    }
}

#[test]
fn run_on_the_cpu_records_batch_mode_and_runtime() {
    let Some(a) = assets() else { return };
    let env = Env::new(&a, Path::new("/nonexistent/libedgetpu.so.1"), "");
    let res = env.results(&[
        "--backend",
        "tflite",
        "--models",
        "blazeface",
        "--batch",
        "1,2",
        "--threads",
        "1",
    ]);
    assert_eq!(res.len(), 2);
    for r in &res {
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(r["backend"], "tflite");
        assert_eq!(r["ep"], "cpu");
        assert_eq!(r["runtime"], "tflite");
        assert_eq!(r["runtime_version"], "2.6.0");
        assert_eq!(r["batch_mode"], "native", "BlazeFace resizes: {r}");
        assert_eq!(r["tflite_delegate"], "none");
        assert_eq!(r["edgetpu_compiled"], false);
        assert!(r["latency_ms_p50"].as_f64().unwrap() > 0.0);
    }

    let res = env.results(&[
        "--backend",
        "tflite",
        "--models",
        "mnist",
        "--precision",
        "int8",
        "--batch",
        "1,4",
    ]);
    let b4 = res.iter().find(|r| r["batch"] == 4).unwrap();
    assert_eq!(b4["status"], "ok", "{b4}");
    assert_eq!(b4["batch_mode"], "sequential");
    assert_eq!(b4["tflite_invokes_per_batch"], 4);
    assert_eq!(b4["input_shape"], "1x28x28x1");
}

#[test]
fn edgetpu_failures_are_failed_records_and_the_sweep_goes_on() {
    let Some(a) = assets() else { return };
    let env = Env::new(&a, &env_missing(), "");
    let res = env.results(&[
        "--backend",
        "tflite",
        "--delegate",
        "edgetpu",
        "--models",
        "tiny_edgetpu",
        "--precision",
        "int8",
        "--batch",
        "1,2",
    ]);
    assert_eq!(res.len(), 2, "one failed record per configuration");
    for r in &res {
        assert_eq!(r["status"], "failed", "{r}");
        let e = r["error"].as_str().unwrap();
        assert!(e.contains("libedgetpu.so.1 not found"), "{e}");
    }

    let (_keep, zero) = standin(0);
    let env = Env::new(&a, &zero, "");
    let res = env.results(&[
        "--backend",
        "tflite",
        "--delegate",
        "edgetpu",
        "--models",
        "tiny_edgetpu",
        "--precision",
        "int8",
        "--batch",
        "1",
    ]);
    assert_eq!(res[0]["status"], "failed");
    assert!(res[0]["error"]
        .as_str()
        .unwrap()
        .contains("lists no Edge TPU device"));
}

fn env_missing() -> std::path::PathBuf {
    std::path::PathBuf::from("/nonexistent/edgetpu/libedgetpu.so.1")
}

#[test]
fn edgetpu_run_through_the_delegate() {
    let Some(a) = assets() else { return };
    let (_keep, lib) = standin(3);
    let env = Env::new(&a, &lib, "usb");
    let res = env.results(&[
        "--backend",
        "tflite",
        "--delegate",
        "edgetpu",
        "--models",
        "tiny_edgetpu",
        "--precision",
        "int8",
        "--batch",
        "1,2,4",
    ]);
    assert_eq!(res.len(), 3);
    for r in &res {
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(r["ep"], "edgetpu");
        assert_eq!(r["edgetpu_device"], "/sys/bus/usb/devices/2-1");
        assert_eq!(r["edgetpu_all_ops_mapped"], true);
        let mode = if r["batch"] == 1 {
            "native"
        } else {
            "sequential"
        };
        assert_eq!(r["batch_mode"], mode, "{r}");
    }

    let o = env.run("info", &["--json"]);
    assert!(o.status.success());
    let info: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(info["tflite_version"], "2.6.0", "{info}");
    assert_eq!(info["tflite_providers"], "cpu,edgetpu", "{info}");
}
