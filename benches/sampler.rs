//! Cost of the telemetry sampler (issue target: under 0.5 % of one core at 10 Hz with
//! every probe of a Jetson fixture tree).
//!
//! `cargo bench --bench sampler` runs a 10 s timed window at 10 Hz over the Jetson Orin
//! Nano fixture (9 zones, cooling, 2 cpufreq policies, GPU devfreq + load, INA3221
//! rails, pwmfan and NVMe hwmon) and reports the process CPU time it used (getrusage,
//! user + system) as a share of one core, then the cost of one scrape per fixture.
//! `SAMPLER_BENCH_SECS` changes the window length.
//!
//! The fixture files are regular files: reading real sysfs attributes runs driver code
//! (an INA3221 read may go to the I2C bus), so on a board the system time is higher.

use std::path::Path;
use std::time::{Duration, Instant};

use edgebench::config::TelemetryConfig;
use edgebench::telemetry::{Scrape, Telemetry};

fn cpu_time() -> Duration {
    // SAFETY: getrusage writes into the struct we pass and nothing else.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    assert_eq!(rc, 0, "getrusage failed");
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn open(board: &str, rate_hz: f64) -> Telemetry {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sys")
        .join(board);
    let cfg = TelemetryConfig {
        sysroot: root.to_string_lossy().into_owned(),
        rate_hz,
        ..TelemetryConfig::default()
    };
    Telemetry::open(&cfg, "", "")
}

fn main() {
    let secs: f64 = std::env::var("SAMPLER_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10.0);

    let t = open("jetson-orin-nano", 10.0);
    println!("fixture jetson-orin-nano: {}", t.probes_found().join("; "));
    let cpu0 = cpu_time();
    let wall0 = Instant::now();
    let w = t.start_window();
    std::thread::sleep(Duration::from_secs_f64(secs));
    let s = w.finish(1);
    let wall = wall0.elapsed().as_secs_f64();
    let cpu = (cpu_time() - cpu0).as_secs_f64();
    println!(
        "10 Hz window: {:.2} s wall, {} scrapes, CPU {:.3} ms = {:.4} % of one core (target < 0.5 %)",
        wall,
        s.scrapes,
        cpu * 1e3,
        100.0 * cpu / wall
    );

    for board in [
        "jetson-orin-nano",
        "jetson-agx-orin",
        "jetson-nano",
        "x86-laptop",
        "raspberry-pi-5",
    ] {
        let t = open(board, 10.0);
        let n = 20_000;
        let (per_scrape, cpu_per) = t.with_probes(|p| {
            let mut s = Scrape::for_probes(p);
            let c0 = cpu_time();
            let t0 = Instant::now();
            for _ in 0..n {
                p.scrape_into(&mut s);
            }
            (
                t0.elapsed().as_secs_f64() / n as f64,
                (cpu_time() - c0).as_secs_f64() / n as f64,
            )
        });
        println!(
            "one scrape, {board}: {:.1} us wall, {:.1} us CPU (at 10 Hz: {:.4} % of one core)",
            per_scrape * 1e6,
            cpu_per * 1e6,
            cpu_per * 10.0 * 100.0
        );
    }
}
