//! Reproduction context (board model, L4T / JetPack, nvpmodel mode, pinned clocks,
//! EMC, governor, memory, library versions, Raspberry Pi firmware, kernel) read from
//! the fixture trees, and carried into every result record and `info`.

mod common;
use common::*;

use std::fs;
use std::path::{Path, PathBuf};

use edgebench::telemetry::context::{read, RunContext};
use edgebench::telemetry::SysRoot;

fn fixture(board: &str) -> PathBuf {
    root().join("tests/fixtures/sys").join(board)
}

fn ctx(board: &str) -> RunContext {
    read(&SysRoot::new(fixture(board)))
}

#[test]
fn jetson_orin_nano_jetpack6() {
    let c = ctx("jetson-orin-nano");
    assert_eq!(
        c.board_model.as_deref(),
        Some("NVIDIA Jetson Orin Nano Developer Kit")
    );
    assert_eq!(c.l4t_release.as_deref(), Some("36.3.0"));
    assert_eq!(c.jetpack_release.as_deref(), Some("6.0"));
    // The status file (mode 1) wins over the configured default (mode 0).
    assert_eq!(c.nvpmodel_id, Some(1));
    assert_eq!(c.nvpmodel_name.as_deref(), Some("7W"));
    assert_eq!(c.nvpmodel_source.as_deref(), Some("status"));
    assert_eq!(c.emc_mhz, Some(2133.0));
    assert_eq!(c.emc_max_mhz, Some(3199.0));
    assert_eq!(c.clocks_pinned, Some(false));
    assert_eq!(c.clocks_checked.as_deref(), Some("cpu,gpu,emc"));
    assert_eq!(c.governor.as_deref(), Some("schedutil"));
    assert_eq!(c.mem_total_mb, Some(7_620_692 / 1024));
    assert_eq!(c.cuda_version.as_deref(), Some("12.2.140"));
    assert_eq!(c.cudnn_version.as_deref(), Some("8.9.4"));
    assert_eq!(c.tensorrt_version.as_deref(), Some("8.6.2"));
    assert_eq!(c.gpu_libs_source.as_deref(), Some("installed"));
    assert_eq!(c.kernel.as_deref(), Some("5.15.136-tegra"));
    assert_eq!(c.libedgetpu_version, None);
    assert_eq!(c.rpi_revision, None);
}

#[test]
fn jetson_agx_orin_without_status_file_uses_the_boot_default() {
    let c = ctx("jetson-agx-orin");
    assert_eq!(c.l4t_release.as_deref(), Some("35.4.1"));
    assert_eq!(c.jetpack_release.as_deref(), Some("5.1.2"));
    assert_eq!(c.nvpmodel_id, Some(2));
    assert_eq!(c.nvpmodel_name.as_deref(), Some("MODE_30W"));
    assert_eq!(c.nvpmodel_source.as_deref(), Some("default"));
    // No debugfs in this tree: EMC unknown, not checked.
    assert_eq!(c.emc_mhz, None);
    assert_eq!(c.clocks_checked.as_deref(), Some("cpu,gpu"));
    assert_eq!(c.clocks_pinned, Some(false));
    assert_eq!(c.cuda_version, None);
    assert_eq!(c.gpu_libs_source, None);
    assert_eq!(c.kernel.as_deref(), Some("5.10.120-tegra"));
}

#[test]
fn jetson_nano_jetpack4_emc_from_the_override_clock() {
    let c = ctx("jetson-nano");
    assert_eq!(c.jetpack_release.as_deref(), Some("4.6.1"));
    assert_eq!(c.nvpmodel_id, Some(0));
    assert_eq!(c.nvpmodel_name.as_deref(), Some("MAXN"));
    assert_eq!(c.emc_mhz, Some(1600.0));
    assert_eq!(c.emc_max_mhz, Some(1600.0));
    assert_eq!(c.cuda_version.as_deref(), Some("10.2.300"));
    assert_eq!(c.cudnn_version.as_deref(), Some("8.2.1"));
    assert_eq!(c.tensorrt_version.as_deref(), Some("8.2.1"));
    // EMC at max, but CPU min < max: not pinned.
    assert_eq!(c.clocks_pinned, Some(false));
}

#[test]
fn jetson_xavier_nx_mode_name() {
    let c = ctx("jetson-xavier-nx");
    assert_eq!(c.nvpmodel_id, Some(2));
    assert_eq!(c.nvpmodel_name.as_deref(), Some("MODE_15W_6CORE"));
}

#[test]
fn jetson_clocks_pinned_when_min_equals_max_everywhere() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = dir.path().join("t");
    copy_tree(&fixture("jetson-orin-nano"), &t);
    let w = |p: &str, v: &str| fs::write(t.join(p.trim_start_matches('/')), v).expect("write");
    for p in ["policy0", "policy4"] {
        let d = format!("sys/devices/system/cpu/cpufreq/{p}");
        let max = fs::read_to_string(t.join(format!("{d}/scaling_max_freq"))).unwrap();
        w(&format!("{d}/scaling_min_freq"), &max);
    }
    // The relative class link's target, inside the copy.
    let gpu = "sys/devices/platform/bus@0/17000000.ga10b/devfreq/17000000.ga10b";
    assert!(t.join(gpu).is_dir());
    let max = fs::read_to_string(t.join(format!("{gpu}/max_freq"))).unwrap();
    w(&format!("{gpu}/min_freq"), &max);
    let c = read(&SysRoot::new(&t));
    // EMC still below its maximum.
    assert_eq!(c.clocks_pinned, Some(false));
    w("sys/kernel/debug/bpmp/debug/clk/emc/rate", "3199000000\n");
    let c = read(&SysRoot::new(&t));
    assert_eq!(c.clocks_checked.as_deref(), Some("cpu,gpu,emc"));
    assert_eq!(c.clocks_pinned, Some(true));
}

#[test]
fn coral_dev_board_edgetpu_runtime() {
    let c = ctx("coral-dev-board");
    assert_eq!(c.libedgetpu_version.as_deref(), Some("16.0"));
    assert_eq!(c.libedgetpu_variant.as_deref(), Some("std"));
    assert_eq!(c.kernel.as_deref(), Some("4.14.98-imx"));
    assert_eq!(c.governor.as_deref(), Some("ondemand"));
    assert_eq!(c.nvpmodel_id, None);
    assert_eq!(c.l4t_release, None);
}

#[test]
fn raspberry_pi_revision_and_firmware() {
    let c = ctx("raspberry-pi-4");
    assert_eq!(
        c.board_model.as_deref(),
        Some("Raspberry Pi 4 Model B Rev 1.4")
    );
    assert_eq!(c.rpi_revision.as_deref(), Some("c03114"));
    assert_eq!(
        c.rpi_firmware_build.as_deref(),
        Some("2024-01-15T11:47:00Z")
    );
    assert_eq!(c.kernel.as_deref(), Some("6.1.21-v8+"));
    let c = ctx("raspberry-pi-5");
    assert_eq!(c.rpi_revision.as_deref(), Some("d04170"));
    assert_eq!(
        c.rpi_firmware_build.as_deref(),
        Some("2024-09-23T13:02:56Z")
    );
    assert_eq!(c.mem_total_mb, Some(8_245_264 / 1024));
    assert_eq!(c.clocks_pinned, Some(false));
}

#[test]
fn x86_laptop_has_no_board_specific_keys() {
    let c = ctx("x86-laptop");
    assert_eq!(c.kernel.as_deref(), Some("6.8.0-49-generic"));
    assert_eq!(c.governor.as_deref(), Some("powersave"));
    assert!(c.board_model.is_some(), "DMI vendor + product");
    assert_eq!(c.nvpmodel_id, None);
    assert_eq!(c.emc_mhz, None);
    assert_eq!(c.rpi_revision, None);
    assert_eq!(c.l4t_release, None);
}

#[test]
fn empty_root_gives_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = read(&SysRoot::new(dir.path()));
    assert_eq!(c, RunContext::default());
}

#[test]
fn results_and_info_carry_the_board_context() {
    let env = Env::new(
        &ort_lib(),
        &format!(
            "[telemetry]\nsysroot = \"{}\"\n",
            fixture("jetson-orin-nano").display()
        ),
    );
    let out = env.path("r.jsonl");
    let o = env.run(
        "run",
        &[
            "--models",
            "tiny_cnn",
            "--batch",
            "1",
            "--threads",
            "1",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let recs = json_lines(&fs::read_to_string(&out).unwrap());
    let r = results(&recs)[0];
    assert_eq!(r["status"], "ok", "{r}");
    assert_eq!(r["nvpmodel_id"], 1);
    assert_eq!(r["nvpmodel_name"], "7W");
    assert_eq!(r["l4t_release"], "36.3.0");
    assert_eq!(r["jetpack_release"], "6.0");
    assert_eq!(r["clocks_pinned"], false);
    assert_eq!(r["emc_mhz"], 2133.0);
    assert_eq!(r["kernel"], "5.15.136-tegra");
    assert_eq!(r["governor"], "schedutil");
    assert_eq!(r["tensorrt_version"], "8.6.2");
    assert!(r.get("rpi_revision").is_none(), "absent when unknown: {r}");

    let o = env.run("info", &["--json"]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let info: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(info["nvpmodel_name"], "7W");
    assert_eq!(info["cuda_version"], "12.2.140");
    assert_eq!(info["kernel"], "5.15.136-tegra");
}

/// Copies a tree keeping symlinks as symlinks.
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for e in fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let ft = e.file_type().expect("file type");
        if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&src).expect("readlink"), &dst)
                .expect("symlink");
        } else if ft.is_dir() {
            copy_tree(&src, &dst);
        } else {
            fs::copy(&src, &dst).expect("copy");
        }
    }
}

#[test]
fn context_keys_round_trip_through_a_record_line() {
    use edgebench::bench::result::{Record, ResultRecord};
    let r = ResultRecord {
        record: "result".into(),
        context: ctx("jetson-orin-nano"),
        ..Default::default()
    };
    let line = Record::Result(Box::new(r.clone())).to_json();
    assert!(line.contains("\"nvpmodel_name\":\"7W\""), "{line}");
    match Record::from_json(&line).unwrap() {
        Record::Result(back) => {
            // The context keys land in the context, not in the backend's `extra`.
            assert!(back.extra.is_empty(), "{:?}", back.extra);
            // kernel / governor travel in the record's own keys, not the context's.
            let mut want = r.context.clone();
            want.kernel = None;
            want.governor = None;
            assert_eq!(back.context, want);
        }
        other => panic!("{other:?}"),
    }
}
