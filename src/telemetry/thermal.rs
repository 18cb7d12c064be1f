//! Thermal zones and cooling devices (`/sys/class/thermal`).
//!
//! Read directly, never through hwmon: sysinfo drops the zones as soon as any hwmon
//! temperature exists, which hides a Jetson's SoC zones behind its NVMe drive.

use std::time::{Duration, Instant};

use super::sensor::{Radix, Sensor};
use super::sysroot::{slug, suffix_number, SysRoot};

const CLASS: &str = "/sys/class/thermal";

/// A thermal zone.
#[derive(Debug)]
pub struct Zone {
    /// N of `thermal_zoneN`.
    pub index: u32,
    /// The zone's `type` (e.g. `cpu-thermal`, `CPU-therm`, `x86_pkg_temp`).
    pub kind: String,
    /// Key for flat records: `CPU-therm` -> `cpu`, unique on this board.
    pub key: String,
    /// Whether this zone takes part in "hottest zone" (cool-down, temp_c_*).
    pub in_hottest: bool,
    temp: Sensor,
}

impl Zone {
    /// Temperature in °C (kernel: m°C). None: offline (Jetson's -256 °C), unreadable
    /// or missing.
    pub fn read_c(&mut self, now: Instant) -> Option<f64> {
        self.temp.read(now).and_then(temp_from_millic)
    }

    /// The zone's `temp` sensor (for failure reasons).
    pub fn sensor(&self) -> &Sensor {
        &self.temp
    }
}

/// A cooling device.
#[derive(Debug)]
pub struct CoolingDevice {
    /// N of `cooling_deviceN`.
    pub index: u32,
    /// The device's `type` (`Processor`, `pwm-fan`, `cpufreq-cpu0`, ...).
    pub kind: String,
    pub max_state: Option<i64>,
    /// False for fans and backlights: stepping those up is cooling, not throttling.
    pub throttles: bool,
    cur: Sensor,
}

impl CoolingDevice {
    /// Current state (0: idle). `intel_powerclamp` reports -1 when idle; clamped to 0.
    pub fn read_state(&mut self, now: Instant) -> Option<i64> {
        self.cur.read(now).map(|v| v.max(0))
    }

    pub fn sensor(&self) -> &Sensor {
        &self.cur
    }
}

/// m°C to °C; the kernel's "no reading" values become None. Jetson reports offline
/// zones as -256 °C (jtop's `TEMPERATURE_OFFLINE`); nothing real reads that low.
pub fn temp_from_millic(v: i64) -> Option<f64> {
    if v <= -256_000 {
        None
    } else {
        Some(v as f64 / 1000.0)
    }
}

/// Zone key for flat records: lower case, `-therm`/`-thermal` cut (`CPU-therm`,
/// `cpu-thermal` both give `cpu`, as jtop names them).
pub fn zone_key(kind: &str) -> String {
    let s = slug(kind);
    for suffix in ["_thermal", "_therm"] {
        if let Some(stem) = s.strip_suffix(suffix) {
            if !stem.is_empty() {
                return stem.to_string();
            }
        }
    }
    if s.is_empty() {
        "zone".to_string()
    } else {
        s
    }
}

/// Whether a zone's temperature means "how hot is the chip". Jetson's `PMIC-Die` zone
/// reads a constant 100 °C (tegrastats prints `PMIC@100C`), so it would make every
/// cool-down wait its full time.
pub fn counts_for_hottest(kind: &str) -> bool {
    !kind.to_ascii_uppercase().starts_with("PMIC")
}

/// Cooling device types that throttle compute when stepped up. Fans (`pwm-fan`, ACPI
/// `Fan`) and display backlights (`LCD`, `intel_backlight`) do not.
pub fn cooling_throttles(kind: &str) -> bool {
    let k = kind.to_ascii_lowercase();
    !(k.contains("fan") || k.contains("lcd") || k.contains("backlight"))
}

/// Finds every zone and cooling device.
pub fn discover(root: &SysRoot) -> (Vec<Zone>, Vec<CoolingDevice>) {
    let mut zones = Vec::new();
    let mut cooling = Vec::new();
    for name in root.list(CLASS) {
        let dir = format!("{CLASS}/{name}");
        if let Some(index) = suffix_number(&name, "thermal_zone") {
            let kind = root
                .read_string(&format!("{dir}/type"))
                .unwrap_or_else(|_| format!("thermal_zone{index}"));
            let temp = root.sensor(&format!("{dir}/temp"), Radix::Decimal, Duration::ZERO);
            zones.push(Zone {
                index,
                key: String::new(),
                in_hottest: counts_for_hottest(&kind),
                kind,
                temp,
            });
        } else if let Some(index) = suffix_number(&name, "cooling_device") {
            let kind = root
                .read_string(&format!("{dir}/type"))
                .unwrap_or_else(|_| format!("cooling_device{index}"));
            let max_state = root.read_i64(&format!("{dir}/max_state"));
            let cur = root.sensor(&format!("{dir}/cur_state"), Radix::Decimal, Duration::ZERO);
            cooling.push(CoolingDevice {
                index,
                throttles: cooling_throttles(&kind),
                kind,
                max_state,
                cur,
            });
        }
    }
    assign_keys(&mut zones);
    (zones, cooling)
}

/// Unique keys: the second `acpitz` becomes `acpitz_1` (by zone number, so stable).
fn assign_keys(zones: &mut [Zone]) {
    let mut seen: Vec<String> = Vec::with_capacity(zones.len());
    for z in zones.iter_mut() {
        let base = zone_key(&z.kind);
        let key = if seen.contains(&base) {
            format!("{base}_{}", z.index)
        } else {
            base
        };
        seen.push(key.clone());
        z.key = key;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_and_real_temperatures() {
        assert_eq!(temp_from_millic(-256_000), None);
        assert_eq!(temp_from_millic(48_500), Some(48.5));
        assert_eq!(temp_from_millic(-5_000), Some(-5.0));
    }

    #[test]
    fn zone_keys_follow_jtop_naming() {
        assert_eq!(zone_key("CPU-therm"), "cpu");
        assert_eq!(zone_key("cpu-thermal"), "cpu");
        assert_eq!(zone_key("x86_pkg_temp"), "x86_pkg_temp");
        assert_eq!(zone_key("Tboard_tegra"), "tboard_tegra");
    }

    #[test]
    fn classification() {
        assert!(!counts_for_hottest("PMIC-Die"));
        assert!(counts_for_hottest("tj-thermal"));
        assert!(!cooling_throttles("pwm-fan"));
        assert!(!cooling_throttles("Fan"));
        assert!(!cooling_throttles("LCD"));
        assert!(cooling_throttles("Processor"));
        assert!(cooling_throttles("cpufreq-cpu0"));
        assert!(cooling_throttles("intel_powerclamp"));
    }
}
