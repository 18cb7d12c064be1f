//! Board profiles in `configs/`: each passes `edgebench check-config`, and each sweep
//! builds a plan against the manifest the board uses (the ONNX zoo, or the Coral
//! manifest for the Edge TPU boards). Also checks the promises the profiles make:
//! Jetson sweeps reach batch 64 on CUDA / TensorRT with fp16, Edge TPU sweeps are
//! TFLite with the edgetpu delegate, rail tables are the board's.

use std::path::{Path, PathBuf};
use std::process::Command;

use edgebench::bench::plan::{self, SweepRequest};
use edgebench::config::{self, Config};
use edgebench::models::Zoo;

const PROFILES: &[&str] = &[
    "jetson-orin-nano",
    "jetson-agx-orin",
    "coral-devboard",
    "rpi-coral-usb",
    "rpi5",
    "x86-desk",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn profile(name: &str) -> PathBuf {
    root().join("configs").join(format!("{name}.toml"))
}

fn load(name: &str) -> Config {
    config::load_with_env(Some(&profile(name)), Vec::new())
        .unwrap_or_else(|e| panic!("{name}: {e:#}"))
        .0
}

#[test]
fn every_profile_passes_check_config() {
    for name in PROFILES {
        let out = Command::new(env!("CARGO_BIN_EXE_edgebench"))
            .args(["check-config", "--config"])
            .arg(profile(name))
            .current_dir(root())
            .env_remove("EDGEBENCH__DEVICE__ID")
            .output()
            .expect("run edgebench");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: check-config failed: {}{}",
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("configuration OK"), "{name}: {stdout}");
    }
}

/// The zoo a profile's sweeps run against: the Coral manifest for Coral boards, the
/// project's ONNX manifest otherwise (skipped while that manifest is not in the tree).
fn zoo_for(cfg: &Config) -> Option<Zoo> {
    if cfg.models.manifest.ends_with("coral/manifest.toml") {
        let z = Zoo::load_from(
            Path::new(&cfg.models.dir),
            &root().join("configs/coral-models.toml"),
        );
        return Some(z.expect("configs/coral-models.toml loads"));
    }
    let manifest = root().join("models/manifest.toml");
    manifest
        .exists()
        .then(|| Zoo::load_from(&root().join("models/build"), &manifest).expect("manifest"))
}

#[test]
fn every_sweep_plans_with_a_model_for_each_precision() {
    for name in PROFILES {
        let cfg = load(name);
        let Some(zoo) = zoo_for(&cfg) else {
            eprintln!("{name}: models/manifest.toml absent, sweep plans not checked");
            continue;
        };
        for sweep in cfg.sweeps.keys() {
            let req = SweepRequest {
                sweep: sweep.clone(),
                ..SweepRequest::default()
            };
            let p = plan::build(&cfg, &zoo, &req)
                .unwrap_or_else(|e| panic!("{name}: sweeps.{sweep}: {e:#}"));
            assert!(!p.configs.is_empty(), "{name}: sweeps.{sweep} is empty");
            for rc in &p.configs {
                assert!(
                    rc.entry.is_some(),
                    "{name}: sweeps.{sweep}: {} has no {} file in {}",
                    rc.model,
                    rc.precision,
                    zoo.manifest.display()
                );
            }
        }
    }
}

#[test]
fn jetson_profiles_sweep_the_gpu_up_to_batch_64() {
    for (name, rails) in [
        ("jetson-orin-nano", "jetson-orin-nano"),
        ("jetson-agx-orin", "jetson-agx-orin"),
    ] {
        let cfg = load(name);
        assert_eq!(cfg.device.rail_table, rails);
        assert!(cfg
            .tensorrt
            .engine_cache_dir
            .starts_with("/var/cache/edgebench/"));
        let paper = &cfg.sweeps["paper"];
        assert_eq!(paper.backend, "ort");
        assert_eq!(paper.batches.iter().max(), Some(&64), "{name}");
        assert!(paper.precisions.contains(&"fp16".to_string()), "{name}");
        let gpu_eps: Vec<&String> = cfg
            .sweeps
            .values()
            .flat_map(|s| &s.eps)
            .filter(|e| *e == "cuda" || *e == "tensorrt")
            .collect();
        assert!(gpu_eps.iter().any(|e| *e == "cuda"), "{name}");
        assert!(gpu_eps.iter().any(|e| *e == "tensorrt"), "{name}");
        // fp16 is a TensorRT precision: a CUDA or CPU sweep asking for it would run fp32
        // under an fp16 label.
        for (s, sw) in &cfg.sweeps {
            if sw.precisions.iter().any(|p| p == "fp16") {
                assert_eq!(sw.eps, vec!["tensorrt".to_string()], "{name}: {s}");
            }
        }
    }
}

#[test]
fn coral_profiles_run_edgetpu_models_sequentially_on_the_delegate() {
    for (name, device) in [("coral-devboard", "pci"), ("rpi-coral-usb", "usb")] {
        let cfg = load(name);
        assert_eq!(cfg.tflite.edgetpu_device, device);
        assert_eq!(cfg.device.rail_table, "");
        let zoo = zoo_for(&cfg).unwrap();
        for (s, sw) in &cfg.sweeps {
            assert_eq!(sw.backend, "tflite", "{name}: {s}");
            assert!(*sw.batches.iter().max().unwrap() <= 8, "{name}: {s}");
            for m in zoo.expand(&sw.models).unwrap() {
                let e = zoo.resolve(&m, "int8").unwrap();
                // The Edge TPU delegate only with compiled models, and vice versa.
                assert_eq!(
                    sw.delegate == "edgetpu",
                    e.file.ends_with("_edgetpu.tflite"),
                    "{name}: sweeps.{s}: {m} ({})",
                    e.file
                );
                assert_eq!(e.input_shape[0], 1, "{m}: compiled with batch 1");
            }
        }
        assert_eq!(cfg.sweeps["paper"].delegate, "edgetpu");
        assert_eq!(cfg.report.baseline, "tflite:cpu");
    }
}

#[test]
fn a_bad_edgetpu_device_is_rejected_with_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.toml");
    std::fs::write(&p, "[tflite]\nedgetpu_device = \"tpu:0\"\n").unwrap();
    let e = format!(
        "{:#}",
        config::load_with_env(Some(&p), Vec::new()).unwrap_err()
    );
    assert!(e.contains("tflite.edgetpu_device `tpu:0`"), "{e}");
}
