//! `edgebench probe` as a user runs it: the real binary on fixture trees.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(board: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sys")
        .join(board)
}

fn edgebench(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_edgebench"))
        .args(args)
        .output()
        .expect("run edgebench");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn table_names_the_board_probes_and_readings() {
    let root = fixture("jetson-agx-orin");
    let (code, out, err) = edgebench(&["probe", "--sysroot", root.to_str().expect("utf8")]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("board: jetson-agx-orin (Jetson AGX Orin Developer Kit), L4T 35.4.1"),
        "{out}"
    );
    assert!(out.contains("CV0-therm"), "{out}");
    assert!(out.contains("offline"), "{out}");
    assert!(out.contains("VDDQ_VDD2_1V8AO"), "{out}");
    assert!(
        out.contains("board power: 6.599 W (VDD_GPU_SOC+VDD_CPU_CV+VIN_SYS_5V0"),
        "{out}"
    );
}

#[test]
fn json_output() {
    let root = fixture("raspberry-pi-4");
    let (code, out, err) =
        edgebench(&["probe", "--json", "--sysroot", root.to_str().expect("utf8")]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["board"]["id"], "raspberry-pi-4");
    assert_eq!(v["rpi"]["get_throttled"], "0x50000");
    assert_eq!(v["thermal_zones"][0]["temp_c"], 52.582);
    assert_eq!(v["snapshot"]["temp_c_cpu"], 52.582);
}

#[test]
fn no_thermal_zones_is_said_and_exits_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, out, err) = edgebench(&["probe", "--sysroot", dir.path().to_str().expect("utf8")]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("no thermal zones found"), "{out}");
}

#[test]
fn capture_then_sysroot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cap = dir.path().join("cap");
    let root = fixture("jetson-nano");
    let (code, out, err) = edgebench(&[
        "probe",
        "--sysroot",
        root.to_str().expect("utf8"),
        "--capture",
        cap.to_str().expect("utf8"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("captured "), "{out}");
    let (code, out, err) =
        edgebench(&["probe", "--json", "--sysroot", cap.to_str().expect("utf8")]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["board"]["id"], "jetson-nano");
    assert_eq!(v["board_power"]["power_w"], 2.432);
}

#[test]
fn bad_sysroot_is_a_clear_error() {
    let (code, _, err) = edgebench(&["probe", "--sysroot", "/nonexistent/edgebench-root"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("sysroot /nonexistent/edgebench-root is not a directory"),
        "{err}"
    );
}
