//! CPU frequency policies and the x86 `thermal_throttle` counters.
//!
//! Frequencies: kernel kHz, converted to MHz here. The actual frequency is
//! `cpuinfo_cur_freq` (read from hardware, mode 0400) when we may read it, else
//! `scaling_cur_freq` (the last requested one). intel_pstate has no `cpuinfo_cur_freq`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::sensor::{Radix, Sensor};
use super::sysroot::{suffix_number, SysRoot};

const CPUFREQ: &str = "/sys/devices/system/cpu/cpufreq";
const CPU: &str = "/sys/devices/system/cpu";

/// One cpufreq policy (a group of CPUs that share a clock).
#[derive(Debug)]
pub struct Policy {
    /// `policy0`, `policy4`, ...
    pub name: String,
    /// `related_cpus`, e.g. `0 1 2 3`.
    pub cpus: String,
    /// First CPU of the policy (for keys: `freq_mhz_cpu4`).
    pub first_cpu: u32,
    /// CPU numbers of the policy.
    pub cpu_list: Vec<u32>,
    pub driver: Option<String>,
    /// `cpuinfo_max_freq`, MHz: what the hardware can do.
    pub hw_max_mhz: Option<f64>,
    pub hw_min_mhz: Option<f64>,
    /// intel_pstate `base_frequency`, MHz: the guaranteed (non-turbo) clock. Used as the
    /// cap on x86, where the all-core turbo clock sits below `cpuinfo_max_freq` without
    /// any throttling.
    pub base_mhz: Option<f64>,
    /// `cpuinfo_cur_freq` or `scaling_cur_freq`.
    pub cur_source: &'static str,
    cur: Sensor,
    /// `scaling_max_freq`: the cap in force (lowered by thermal cooling, nvpmodel, users).
    cap: Sensor,
}

impl Policy {
    /// Current frequency, MHz.
    pub fn read_cur_mhz(&mut self, now: Instant) -> Option<f64> {
        self.cur.read(now).map(khz_to_mhz)
    }

    /// Current cap (`scaling_max_freq`), MHz.
    pub fn read_cap_mhz(&mut self, now: Instant) -> Option<f64> {
        self.cap.read(now).map(khz_to_mhz)
    }

    pub fn cur_sensor(&self) -> &Sensor {
        &self.cur
    }
}

/// kHz (cpufreq) to MHz.
pub fn khz_to_mhz(v: i64) -> f64 {
    v as f64 / 1000.0
}

/// What a throttle counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterKind {
    /// `*_throttle_count`: goes up when a throttle event starts.
    Count,
    /// `*_throttle_total_time_ms`: goes up only when an event ends.
    TimeMs,
}

/// An x86 thermal-throttle counter of one core or one package.
#[derive(Debug)]
pub struct ThrottleCounter {
    /// `core` or `package`.
    pub scope: &'static str,
    /// CPU whose directory the counter is read from.
    pub cpu: u32,
    pub kind: CounterKind,
    sensor: Sensor,
}

impl ThrottleCounter {
    pub fn read(&mut self, now: Instant) -> Option<i64> {
        self.sensor.read(now)
    }
}

/// Finds the cpufreq policies.
pub fn discover_policies(root: &SysRoot) -> Vec<Policy> {
    let mut out = Vec::new();
    for name in root.list(CPUFREQ) {
        if suffix_number(&name, "policy").is_none() {
            continue;
        }
        let dir = format!("{CPUFREQ}/{name}");
        let cpus = root
            .read_string(&format!("{dir}/related_cpus"))
            .or_else(|_| root.read_string(&format!("{dir}/affected_cpus")))
            .unwrap_or_default();
        let first_cpu = cpus
            .split_whitespace()
            .next()
            .and_then(|c| c.parse().ok())
            .or_else(|| suffix_number(&name, "policy"))
            .unwrap_or(0);
        let hw = root.sensor(
            &format!("{dir}/cpuinfo_cur_freq"),
            Radix::Decimal,
            Duration::ZERO,
        );
        let (cur, cur_source) = {
            let mut hw = hw;
            // A trial read: the file is 0400, so unprivileged runs fall back.
            if hw.is_open() && hw.read(Instant::now()).is_some() {
                (hw, "cpuinfo_cur_freq")
            } else {
                (
                    root.sensor(
                        &format!("{dir}/scaling_cur_freq"),
                        Radix::Decimal,
                        Duration::ZERO,
                    ),
                    "scaling_cur_freq",
                )
            }
        };
        out.push(Policy {
            first_cpu,
            cpu_list: super::cpuload::parse_cpu_list(&cpus),
            cpus,
            driver: root.read_string(&format!("{dir}/scaling_driver")).ok(),
            hw_max_mhz: root
                .read_i64(&format!("{dir}/cpuinfo_max_freq"))
                .map(khz_to_mhz),
            hw_min_mhz: root
                .read_i64(&format!("{dir}/cpuinfo_min_freq"))
                .map(khz_to_mhz),
            base_mhz: root
                .read_i64(&format!("{dir}/base_frequency"))
                .map(khz_to_mhz),
            cur_source,
            cur,
            cap: root.sensor(
                &format!("{dir}/scaling_max_freq"),
                Radix::Decimal,
                Duration::ZERO,
            ),
            name,
        });
    }
    out
}

/// Governor of the policy holding cpu0 (or the first policy).
pub fn governor(root: &SysRoot, policies: &[Policy]) -> Option<String> {
    let p = policies
        .iter()
        .find(|p| p.first_cpu == 0)
        .or(policies.first())?;
    root.read_string(&format!("{CPUFREQ}/{}/scaling_governor", p.name))
        .ok()
}

/// Finds the x86 throttle counters: one set per physical core (SMT siblings share
/// them) and one per package (the package counters repeat on every CPU of it).
pub fn discover_counters(root: &SysRoot) -> Vec<ThrottleCounter> {
    let mut out = Vec::new();
    let mut cores_seen = BTreeSet::new();
    let mut packages_seen = BTreeSet::new();
    for name in root.list(CPU) {
        let Some(cpu) = suffix_number(&name, "cpu") else {
            continue;
        };
        let dir = format!("{CPU}/{name}");
        let tt = format!("{dir}/thermal_throttle");
        if !root.exists(&tt) {
            continue;
        }
        let package = root
            .read_i64(&format!("{dir}/topology/physical_package_id"))
            .unwrap_or(0);
        let core = root
            .read_i64(&format!("{dir}/topology/core_id"))
            .unwrap_or(cpu as i64);
        let mut add = |scope: &'static str, file: &str, kind: CounterKind| {
            if let Some(sensor) = root.sensor_if_exists(&format!("{tt}/{file}"), Radix::Decimal) {
                out.push(ThrottleCounter {
                    scope,
                    cpu,
                    kind,
                    sensor,
                });
            }
        };
        if cores_seen.insert((package, core)) {
            add("core", "core_throttle_count", CounterKind::Count);
            add("core", "core_throttle_total_time_ms", CounterKind::TimeMs);
        }
        if packages_seen.insert(package) {
            add("package", "package_throttle_count", CounterKind::Count);
            add(
                "package",
                "package_throttle_total_time_ms",
                CounterKind::TimeMs,
            );
        }
    }
    out
}
