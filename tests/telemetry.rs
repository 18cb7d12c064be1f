//! Telemetry probes on fixture trees shaped as the kernel writes them (one per board
//! family), the per-board rail totals, the throttle rules seen through real file
//! changes between scrapes, energy integration, cool-down, and the capture round trip.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use edgebench::config::{DeviceConfig, TelemetryConfig};
use edgebench::telemetry::cli::{probe_to, ProbeArgs};
use edgebench::telemetry::{SysRoot, Telemetry, WindowSummary};
use serde_json::Value;

fn fixture(board: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sys")
        .join(board)
}

const BOARDS: &[&str] = &[
    "x86-laptop",
    "jetson-orin-nano",
    "jetson-agx-orin",
    "jetson-nano",
    "jetson-xavier-nx",
    "coral-dev-board",
    "raspberry-pi-4",
    "raspberry-pi-5",
];

fn cfg(root: &Path, rate_hz: f64) -> TelemetryConfig {
    TelemetryConfig {
        sysroot: root.to_string_lossy().into_owned(),
        rate_hz,
        ..TelemetryConfig::default()
    }
}

fn open(root: &Path) -> Telemetry {
    Telemetry::open(&cfg(root, 10.0), "", "")
}

/// Copies a tree keeping symlinks as symlinks (the layout the probes rely on).
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

/// A writable copy of a fixture.
fn scratch(board: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&fixture(board), dir.path());
    dir
}

/// Writes a value the way sysfs shows it (in place, so open files see it).
fn set(root: &Path, path: &str, value: &str) {
    let p = SysRoot::new(root).path(path);
    assert!(p.is_file(), "{path} missing in fixture");
    fs::write(&p, format!("{value}\n")).expect("write");
}

fn num(m: &serde_json::Map<String, Value>, k: &str) -> Option<f64> {
    m.get(k).and_then(Value::as_f64)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

// ---------------------------------------------------------------- each family

#[test]
fn boards_are_identified() {
    let want = [
        ("x86-laptop", "x86-64"),
        ("jetson-orin-nano", "jetson-orin-nano"),
        ("jetson-agx-orin", "jetson-agx-orin"),
        ("jetson-nano", "jetson-nano"),
        ("jetson-xavier-nx", "jetson-xavier-nx"),
        ("coral-dev-board", "coral-dev-board"),
        ("raspberry-pi-4", "raspberry-pi-4"),
        ("raspberry-pi-5", "raspberry-pi-5"),
    ];
    for (dir, id) in want {
        let t = open(&fixture(dir));
        assert_eq!(t.board(), id, "{dir}");
    }
    let orin = open(&fixture("jetson-orin-nano"));
    assert_eq!(orin.board_info().l4t.as_deref(), Some("36.3.0"));
    let coral = open(&fixture("coral-dev-board"));
    assert_eq!(coral.board_info().edge_tpus, vec!["apex_0".to_string()]);
    let x86 = open(&fixture("x86-laptop"));
    assert_eq!(
        x86.board_info().model.as_deref(),
        Some("Dell Inc. XPS 15 9575")
    );
    // The config wins over detection.
    let forced = Telemetry::open(&cfg(&fixture("jetson-nano"), 10.0), "my-carrier", "");
    assert_eq!(forced.board(), "my-carrier");
}

#[test]
fn x86_laptop_zones_counters_hwmon_and_the_sleeping_gpu() {
    let root = fixture("x86-laptop");
    let t = open(&root);
    assert_eq!(t.hottest_temp_c(), Some(58.0));
    assert_eq!(t.governor().as_deref(), Some("powersave"));
    let (counters, policies, source) =
        t.with_probes(|p| (p.counters.len(), p.policies.len(), p.policies[0].cur_source));
    // 4 cores x (count, time) + 1 package x (count, time): SMT siblings and the
    // package's repeats on every CPU counted once.
    assert_eq!(counters, 10);
    assert_eq!(policies, 8);
    // intel_pstate has no cpuinfo_cur_freq.
    assert_eq!(source, "scaling_cur_freq");
    let s = t.snapshot();
    assert_eq!(num(&s, "temp_c_x86_pkg_temp"), Some(58.0));
    assert_eq!(num(&s, "temp_c_acpitz"), Some(25.0));
    assert_eq!(num(&s, "temp_c_acpitz_1"), Some(27.8));
    // iwlwifi zone without a temperature file: absent, not 0.
    assert!(!s.contains_key("temp_c_iwlwifi_1"));
    assert_eq!(num(&s, "fan_rpm_dell_smm"), Some(2452.0));
    assert_eq!(num(&s, "fan_rpm_dell_smm2"), Some(2398.0));
    assert!(!s.contains_key("fan_rpm_amdgpu"), "sleeping GPU was read");
    assert_eq!(num(&s, "freq_mhz_cpu0"), Some(3900.117));
    assert_eq!(
        s.get("mem_available_mb").and_then(Value::as_i64),
        Some(12533)
    );
    assert_eq!(s.get("throttled"), Some(&Value::Bool(false)));
    let found = t.probes_found();
    assert!(
        found
            .iter()
            .any(|f| f == "hwmon: amdgpu (asleep, not read)"),
        "{found:?}"
    );
    assert!(!s.contains_key("power_w"));
}

#[test]
fn a_sleeping_pcie_device_is_not_read() {
    let root = SysRoot::recording(fixture("x86-laptop"));
    let t = Telemetry::open_root(root, &TelemetryConfig::default(), "", "");
    let _ = t.snapshot();
    let read = t.root().recorded();
    let gpu = "/sys/class/hwmon/hwmon5";
    assert!(read.contains(&format!("{gpu}/device/power_state")));
    assert!(
        !read
            .iter()
            .any(|p| p.starts_with(gpu) && !p.ends_with("power_state") && !p.ends_with("/name")),
        "files of a D3cold device were read: {read:?}"
    );
    assert!(read.contains(&"/sys/class/hwmon/hwmon4/temp1_input".to_string()));
}

#[test]
fn jetson_orin_nano_jp6() {
    let t = open(&fixture("jetson-orin-nano"));
    let s = t.snapshot();
    // -256 °C zones (no DLA/PVA on Orin Nano) are absent.
    for z in ["cv0", "cv1", "cv2"] {
        assert!(!s.contains_key(&format!("temp_c_{z}")), "{z}");
    }
    assert_eq!(num(&s, "temp_c_cpu"), Some(48.281));
    assert_eq!(num(&s, "temp_c"), Some(48.281));
    assert_eq!(num(&s, "freq_mhz_gpu"), Some(306.0));
    assert_eq!(num(&s, "gpu_load_pct"), Some(13.7));
    // cpuinfo_cur_freq (hardware) preferred over scaling_cur_freq.
    assert_eq!(num(&s, "freq_mhz_cpu0"), Some(1497.6));
    assert_eq!(num(&s, "freq_mhz_cpu4"), Some(729.6));
    assert_eq!(num(&s, "fan_pwm_pwmfan"), Some(97.0));
    // Thermal zones are kept although an NVMe hwmon exists (sysinfo drops them).
    assert!(t
        .probes_found()
        .iter()
        .any(|f| f.starts_with("hwmon: nvme")));
    assert_eq!(num(&s, "power_w_vdd_in"), Some(5.064 * 1.168));
}

#[test]
fn jetson_xavier_nx_and_nano_find_the_gpu_by_node_name() {
    let nx = open(&fixture("jetson-xavier-nx"));
    let nano = open(&fixture("jetson-nano"));
    for (t, node) in [(&nx, "gv11b"), (&nano, "gpu")] {
        let gpu = t.with_probes(|p| {
            p.devfreq
                .iter()
                .find(|d| d.gpu)
                .and_then(|d| d.node.clone())
        });
        assert_eq!(gpu.as_deref(), Some(node));
    }
    assert_eq!(num(&nano.snapshot(), "gpu_load_pct"), Some(5.2));
    // PMIC-Die reads a constant 100 °C: not the hottest zone.
    assert_eq!(nano.hottest_temp_c(), Some(41.5));
    assert_eq!(nx.hottest_temp_c(), Some(39.5));
}

#[test]
fn rail_totals_per_board() {
    let cases: [(&str, &str, f64); 4] = [
        ("jetson-orin-nano", "VDD_IN", 5.064 * 1.168),
        ("jetson-xavier-nx", "VDD_IN", 5.056 * 0.920),
        // JetPack 4 iio rails: in_power0_input is mW.
        ("jetson-nano", "POM_5V_IN", 2.432),
        // No total rail; VDDQ_VDD2_1V8AO is fed by VIN_SYS_5V0 and left out.
        (
            "jetson-agx-orin",
            "VDD_GPU_SOC+VDD_CPU_CV+VIN_SYS_5V0",
            19.232 * 0.124 + 19.232 * 0.041 + 5.016 * 0.683,
        ),
    ];
    for (board, scope, watts) in cases {
        let t = open(&fixture(board));
        assert_eq!(t.power_scope().as_deref(), Some(scope), "{board}");
        let got = num(&t.snapshot(), "power_w").expect("power_w");
        assert!(close(got, watts), "{board}: {got} != {watts}");
    }
    let agx = open(&fixture("jetson-agx-orin"));
    let rails: Vec<String> = agx.with_probes(|p| p.rails.iter().map(|r| r.name.clone()).collect());
    // NC inputs and the shunt-sum channel are not rails.
    assert_eq!(
        rails,
        [
            "VDD_GPU_SOC",
            "VDD_CPU_CV",
            "VIN_SYS_5V0",
            "VDDQ_VDD2_1V8AO"
        ]
    );
    // A rail table from config: explicit rails.
    let t = Telemetry::open(
        &cfg(&fixture("jetson-orin-nano"), 10.0),
        "",
        "VDD_CPU_GPU_CV+VDD_SOC",
    );
    let got = num(&t.snapshot(), "power_w").expect("power_w");
    assert!(close(got, 5.064 * 0.408 + 5.064 * 0.552));
}

#[test]
fn coral_and_raspberry_pi() {
    let coral = open(&fixture("coral-dev-board"));
    let s = coral.snapshot();
    assert_eq!(num(&s, "temp_c_edgetpu0"), Some(46.05));
    assert_eq!(s.get("edgetpu_dfs_level").and_then(Value::as_u64), Some(0));
    assert_eq!(num(&s, "temp_c_cpu"), Some(47.0));

    let pi4 = open(&fixture("raspberry-pi-4"));
    let s = pi4.snapshot();
    assert_eq!(
        s.get("rpi_throttled_bits").and_then(Value::as_u64),
        Some(0x50000)
    );
    // Sticky bits from before are not a throttle now.
    assert_eq!(s.get("throttled"), Some(&Value::Bool(false)));
    assert_eq!(num(&s, "freq_mhz_cpu0"), Some(1800.0));

    let pi5 = open(&fixture("raspberry-pi-5"));
    let s = pi5.snapshot();
    assert_eq!(num(&s, "fan_rpm_pwmfan"), Some(2932.0));
    assert_eq!(num(&s, "fan_pwm_pwmfan"), Some(75.0));
    assert_eq!(num(&s, "temp_c_cpu"), Some(56.7));
    assert!(!s.contains_key("rpi_throttled_bits"));

    // Reading the deprecated firmware file can be switched off.
    let off = TelemetryConfig {
        rpi_get_throttled: false,
        ..cfg(&fixture("raspberry-pi-4"), 10.0)
    };
    let s = Telemetry::open(&off, "", "").snapshot();
    assert!(!s.contains_key("rpi_throttled_bits"));
}

// ---------------------------------------------------------------- throttle rules

/// Runs a window on a scratch copy: `change` edits the tree after the first scrape,
/// then the window runs `hold` before finishing.
fn window_with(board: &str, hold: Duration, change: impl FnOnce(&Path)) -> WindowSummary {
    let dir = scratch(board);
    let t = Telemetry::open(&cfg(dir.path(), 50.0), "", "");
    let w = t.start_window();
    change(dir.path());
    std::thread::sleep(hold);
    w.finish(100)
}

fn reasons(w: &WindowSummary) -> Vec<&str> {
    w.throttle_reasons.iter().map(String::as_str).collect()
}

#[test]
fn quiet_windows_are_not_throttled() {
    for b in BOARDS {
        let w = window_with(b, Duration::from_millis(50), |_| {});
        assert_eq!(w.throttled, Some(false), "{b}: {:?}", w.throttle_reasons);
        assert!(w.scrapes >= 2, "{b}");
        assert!(w.temp_c_start.is_some() && w.temp_c_end.is_some(), "{b}");
    }
}

#[test]
fn x86_throttle_counters_moving() {
    let w = window_with("x86-laptop", Duration::ZERO, |r| {
        set(
            r,
            "/sys/devices/system/cpu/cpu1/thermal_throttle/core_throttle_count",
            "4",
        )
    });
    assert_eq!(reasons(&w), ["thermal_throttle_count"]);
    // The time moves only when an event ends: on its own it is still a reason.
    let w = window_with("x86-laptop", Duration::ZERO, |r| {
        set(
            r,
            "/sys/devices/system/cpu/cpu0/thermal_throttle/package_throttle_total_time_ms",
            "1390",
        )
    });
    assert_eq!(reasons(&w), ["thermal_throttle_time"]);
    // Package counters are read once per package (from cpu0): cpu5's copy is not read.
    let w = window_with("x86-laptop", Duration::ZERO, |r| {
        set(
            r,
            "/sys/devices/system/cpu/cpu5/thermal_throttle/package_throttle_count",
            "40",
        )
    });
    assert_eq!(w.throttled, Some(false));
}

/// Rewrites `/proc/stat` every 10 ms for `run`, as if every CPU were `busy` (0..=1)
/// busy, the way the kernel's counters advance.
fn simulate_load(
    root: &Path,
    ncpu: usize,
    busy: f64,
    run: Duration,
) -> std::thread::JoinHandle<()> {
    let stat = root.join("proc/stat");
    std::thread::spawn(move || {
        let start = Instant::now();
        let (mut user, mut idle) = (100_000u64, 1_000_000u64);
        while start.elapsed() < run {
            user += (busy * 100.0).round() as u64;
            idle += 100 - (busy * 100.0).round() as u64;
            let mut text = format!(
                "cpu  {} 0 0 {} 0 0 0 0 0 0\n",
                user * ncpu as u64,
                idle * ncpu as u64
            );
            for c in 0..ncpu {
                text.push_str(&format!("cpu{c} {user} 0 0 {idle} 0 0 0 0 0 0\n"));
            }
            text.push_str("intr 1\nctxt 1\n");
            fs::write(&stat, text).expect("write stat");
            std::thread::sleep(Duration::from_millis(10));
        }
    })
}

/// A window during which every CPU policy runs at `khz` with load `busy`.
fn window_at_freq(
    board: &str,
    ncpu: usize,
    policies: &[u32],
    khz: &str,
    busy: f64,
) -> WindowSummary {
    window_with(board, Duration::ZERO, |r| {
        for i in policies {
            let p = format!("/sys/devices/system/cpu/cpufreq/policy{i}");
            for f in ["scaling_cur_freq", "cpuinfo_cur_freq"] {
                if SysRoot::new(r).path(&format!("{p}/{f}")).exists() {
                    set(r, &format!("{p}/{f}"), khz);
                }
            }
        }
        simulate_load(r, ncpu, busy, Duration::from_millis(400))
            .join()
            .expect("load thread");
    })
}

#[test]
fn frequency_pulled_below_the_cap() {
    // x86: the cap is the base clock (3100 MHz); busy CPUs at 1500 MHz are throttled.
    let w = window_at_freq("x86-laptop", 8, &[0, 1, 2, 3, 4, 5, 6, 7], "1500000", 1.0);
    assert_eq!(reasons(&w), ["cpu_freq_below_cap"]);
    assert_eq!(
        (w.freq_mhz_min, w.freq_mhz_cap),
        (Some(1500.0), Some(3100.0))
    );
    // Raspberry Pi firmware capping the ARM clock at 1000 of 1800 MHz under load.
    let w = window_at_freq("raspberry-pi-4", 4, &[0], "1000000", 0.97);
    assert_eq!(reasons(&w), ["cpu_freq_below_cap"]);
    // The same clock while the CPU waits on an accelerator: the governor's choice.
    let w = window_at_freq("coral-dev-board", 4, &[0], "1000000", 0.15);
    assert_eq!(w.throttled, Some(false), "{:?}", w.throttle_reasons);
    let w = window_at_freq("jetson-orin-nano", 6, &[0, 4], "729600", 0.1);
    assert_eq!(w.throttled, Some(false), "{:?}", w.throttle_reasons);
    // Jetson: thermal management lowers scaling_max_freq and the GPU's max_freq.
    let w = window_with("jetson-orin-nano", Duration::ZERO, |r| {
        set(
            r,
            "/sys/devices/system/cpu/cpufreq/policy4/scaling_max_freq",
            "1113600",
        );
        set(r, "/sys/class/devfreq/17000000.ga10b/max_freq", "420750000");
    });
    assert_eq!(
        reasons(&w),
        ["cpu_freq_cap_lowered", "gpu_freq_cap_lowered"]
    );
}

#[test]
fn cooling_device_stepped_up_but_not_a_fan() {
    let w = window_with("jetson-nano", Duration::ZERO, |r| {
        set(r, "/sys/class/thermal/cooling_device1/cur_state", "3")
    });
    assert_eq!(reasons(&w), ["cooling_state_raised"]);
    let w = window_with("jetson-nano", Duration::ZERO, |r| {
        set(r, "/sys/class/thermal/cooling_device0/cur_state", "3")
    });
    assert_eq!(w.throttled, Some(false), "pwm-fan counted as throttling");
}

#[test]
fn jetson_over_current_alarm() {
    let w = window_with("jetson-orin-nano", Duration::ZERO, |r| {
        set(r, "/sys/class/hwmon/hwmon1/curr1_crit_alarm", "1")
    });
    assert_eq!(reasons(&w), ["rail_current_alarm"]);
}

#[test]
fn edge_tpu_trip_point() {
    let w = window_with("coral-dev-board", Duration::ZERO, |r| {
        set(r, "/sys/class/apex/apex_0/temp", "91250")
    });
    assert_eq!(reasons(&w), ["edgetpu_trip_point"]);
    assert_eq!(w.edgetpu_dfs_level_max, Some(2));
}

#[test]
fn raspberry_pi_bits() {
    let w = window_with("raspberry-pi-4", Duration::ZERO, |r| {
        set(
            r,
            "/sys/devices/platform/soc/soc:firmware/get_throttled",
            "50005",
        )
    });
    assert_eq!(reasons(&w), ["rpi_under_voltage", "rpi_throttled"]);
    // A sticky bit newly set: it happened between scrapes.
    let w = window_with("raspberry-pi-4", Duration::ZERO, |r| {
        set(
            r,
            "/sys/devices/platform/soc/soc:firmware/get_throttled",
            "d0000",
        )
    });
    assert_eq!(reasons(&w), ["rpi_soft_temp_limit"]);
    let w = window_with("raspberry-pi-5", Duration::ZERO, |r| {
        set(r, "/sys/class/hwmon/hwmon3/in0_lcrit_alarm", "1")
    });
    assert_eq!(reasons(&w), ["rpi_under_voltage"]);
}

// ---------------------------------------------------------------- energy

#[test]
fn energy_of_a_known_power_over_a_known_time() {
    let dir = scratch("jetson-orin-nano");
    let t = Telemetry::open(&cfg(dir.path(), 20.0), "", "");
    let started = Instant::now();
    let w = t.start_window();
    std::thread::sleep(Duration::from_millis(500));
    let s = w.finish(250);
    let wall = started.elapsed().as_secs_f64();
    let watts = 5.064 * 1.168;
    let span = s.window_s.expect("span");
    assert!(span > 0.45 && span <= wall, "span {span}, wall {wall}");
    assert!(close(s.power_w_mean.expect("mean"), watts));
    let e = s.energy_j.expect("energy");
    assert!(close(e, watts * span), "{e} != {watts} x {span}");
    assert!(close(
        s.energy_mj_per_sample.expect("per sample"),
        e * 1000.0 / 250.0
    ));
    assert_eq!(s.power_scope.as_deref(), Some("VDD_IN"));
    assert_eq!(
        s.energy_method.as_deref(),
        Some("onboard-estimate:ina3221:trapezoid")
    );
    let hz = s.power_sample_hz.expect("rate");
    assert!(hz > 2.0 && hz <= 25.0, "rate {hz}");

    // Power steps from 5.9 W to 11.8 W mid-window: the mean lies strictly between.
    let t = Telemetry::open(&cfg(dir.path(), 50.0), "", "");
    let w = t.start_window();
    std::thread::sleep(Duration::from_millis(200));
    set(dir.path(), "/sys/class/hwmon/hwmon1/curr1_input", "2336");
    std::thread::sleep(Duration::from_millis(200));
    let s = w.finish(1);
    let mean = s.power_w_mean.expect("mean");
    assert!(mean > watts && mean < 2.0 * watts, "{mean}");
    assert_eq!(s.power_w_max, Some(5.064 * 2.336));
}

#[test]
fn sampling_is_never_faster_than_the_power_sensor_updates() {
    let dir = scratch("jetson-orin-nano");
    let t = Telemetry::open(&cfg(dir.path(), 100.0), "", "");
    assert_eq!(t.sample_period(), Duration::from_millis(10));
    let hw = SysRoot::new(dir.path()).path("/sys/class/hwmon/hwmon1/update_interval");
    fs::write(&hw, "140\n").expect("write");
    let t = Telemetry::open(&cfg(dir.path(), 100.0), "", "");
    assert_eq!(t.sample_period(), Duration::from_millis(140));
}

#[test]
fn boards_without_power_sensors_report_no_energy() {
    for b in ["x86-laptop", "raspberry-pi-5", "coral-dev-board"] {
        let w = window_with(b, Duration::ZERO, |_| {});
        assert_eq!(
            (w.power_w_mean, w.energy_mj_per_sample, w.power_scope),
            (None, None, None),
            "{b}"
        );
    }
}

// ---------------------------------------------------------------- cool-down, empty boards

#[test]
fn cool_down_waits_for_the_hottest_zone() {
    let dir = scratch("jetson-orin-nano");
    for z in [0, 8] {
        set(
            dir.path(),
            &format!("/sys/class/thermal/thermal_zone{z}/temp"),
            "81500",
        );
    }
    let t = open(dir.path());
    let c = t.cool_down(60.0, 0.3);
    assert!(!c.reached);
    assert!(c.waited >= Duration::from_millis(300));
    assert_eq!(c.temp_c, Some(81.5));

    let root = dir.path().to_path_buf();
    let cooler = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        for z in [0, 8] {
            set(
                &root,
                &format!("/sys/class/thermal/thermal_zone{z}/temp"),
                "55000",
            );
        }
    });
    let c = t.cool_down(60.0, 30.0);
    cooler.join().expect("cooler thread");
    assert!(c.reached);
    assert!(c.waited < Duration::from_secs(10));
    assert_eq!(c.temp_c, Some(55.0));
}

#[test]
fn nothing_readable_gives_an_empty_summary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = open(dir.path());
    assert_eq!(t.board(), "unknown");
    assert!(t.probes_found().is_empty());
    assert_eq!(t.hottest_temp_c(), None);
    assert!(t.cool_down(50.0, 10.0).reached);
    assert_eq!(t.start_window().finish(10), WindowSummary::default());
    let s = t.snapshot();
    assert!(s.contains_key("ts"));
    assert!(!s.contains_key("throttled"));
    // A sysroot that does not exist does not fail either.
    let t = open(&dir.path().join("nope"));
    assert_eq!(t.start_window().finish(1), WindowSummary::default());
}

// ---------------------------------------------------------------- capture

fn probe_json(root: &Path) -> Value {
    let args = ProbeArgs {
        sysroot: Some(root.to_path_buf()),
        json: true,
        ..ProbeArgs::default()
    };
    let mut out = Vec::new();
    probe_to(
        &args,
        &TelemetryConfig::default(),
        &DeviceConfig::default(),
        &mut out,
    )
    .expect("probe");
    let mut v: Value = serde_json::from_slice(&out).expect("json");
    let obj = v.as_object_mut().expect("object");
    obj.remove("sysroot");
    if let Some(Value::Object(s)) = obj.get_mut("snapshot") {
        s.remove("ts");
    }
    v
}

#[test]
fn capture_reads_back_the_same() {
    for b in BOARDS {
        let out = tempfile::tempdir().expect("tempdir");
        let cap = out.path().join("capture");
        let args = ProbeArgs {
            sysroot: Some(fixture(b)),
            capture: Some(cap.clone()),
            ..ProbeArgs::default()
        };
        let mut text = Vec::new();
        probe_to(
            &args,
            &TelemetryConfig::default(),
            &DeviceConfig::default(),
            &mut text,
        )
        .expect("capture");
        assert_eq!(probe_json(&cap), probe_json(&fixture(b)), "{b}");
        // Layout kept: class entries are symlinks into /sys/devices.
        let zone0 = cap.join("sys/class/thermal/thermal_zone0");
        assert!(
            fs::symlink_metadata(&zone0)
                .expect("zone0")
                .file_type()
                .is_symlink(),
            "{b}"
        );
    }
    // Only what was read: no trip points, no sleeping GPU's temperature.
    let out = tempfile::tempdir().expect("tempdir");
    let cap = out.path().join("c");
    let args = ProbeArgs {
        sysroot: Some(fixture("x86-laptop")),
        capture: Some(cap.clone()),
        ..ProbeArgs::default()
    };
    probe_to(
        &args,
        &TelemetryConfig::default(),
        &DeviceConfig::default(),
        &mut Vec::new(),
    )
    .expect("capture");
    let gpu = SysRoot::new(&cap).path("/sys/class/hwmon/hwmon5");
    assert!(gpu.join("device/power_state").is_file());
    assert!(!gpu.join("temp1_input").exists());
    assert!(!SysRoot::new(&cap)
        .path("/sys/class/thermal/thermal_zone0/trip_point_0_temp")
        .exists());
    // A non-empty target is refused.
    let err = probe_to(
        &args,
        &TelemetryConfig::default(),
        &DeviceConfig::default(),
        &mut Vec::new(),
    )
    .expect_err("non-empty capture dir");
    assert!(format!("{err:#}").contains("not empty"), "{err:#}");
}
