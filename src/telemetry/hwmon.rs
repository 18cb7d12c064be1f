//! Generic hwmon devices (`/sys/class/hwmon/hwmonN`): temperatures, voltages, currents,
//! power, energy, fans, PWM duty.
//!
//! Kernel units (Documentation/hwmon/sysfs-interface.rst), converted here: `temp*` m°C
//! -> °C, `in*` mV -> V, `curr*` mA -> A, `power*` µW -> W, `energy*` µJ -> J, `fan*`
//! RPM (kept), `pwm*` 0-255 (kept).
//!
//! A PCIe device in a low-power state (`device/power_state` not `D0`) is not read: the
//! read would wake it (bottom's `is_device_awake`). The check is made on every scrape.

use std::time::{Duration, Instant};

use super::sensor::{PowerState, Radix, Sensor};
use super::sysroot::{suffix_number, SysRoot};

pub const CLASS: &str = "/sys/class/hwmon";

/// hwmon drivers read by their own probe (jetson.rs, rpi.rs).
const HANDLED_ELSEWHERE: &[&str] = &["ina3221", "rpi_volt"];

/// What one hwmon channel measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Temp,
    Voltage,
    Current,
    Power,
    Energy,
    Fan,
    Pwm,
}

impl Kind {
    /// Unit suffix of the converted value (for keys and tables).
    pub fn unit(&self) -> &'static str {
        match self {
            Kind::Temp => "c",
            Kind::Voltage => "v",
            Kind::Current => "a",
            Kind::Power => "w",
            Kind::Energy => "j",
            Kind::Fan => "rpm",
            Kind::Pwm => "pwm",
        }
    }

    /// Attribute prefix in file names (`temp`, `in`, `curr`, ...).
    pub fn prefix(&self) -> &'static str {
        match self {
            Kind::Temp => "temp",
            Kind::Voltage => "in",
            Kind::Current => "curr",
            Kind::Power => "power",
            Kind::Energy => "energy",
            Kind::Fan => "fan",
            Kind::Pwm => "pwm",
        }
    }

    /// Kernel integer to the named unit.
    pub fn convert(&self, raw: i64) -> Option<f64> {
        let v = raw as f64;
        match self {
            Kind::Temp => super::thermal::temp_from_millic(raw),
            Kind::Voltage | Kind::Current => Some(v / 1e3),
            Kind::Power | Kind::Energy => Some(v / 1e6),
            Kind::Fan | Kind::Pwm => Some(v),
        }
    }
}

/// One channel, e.g. `temp1_input` labelled `Composite`.
#[derive(Debug)]
pub struct Channel {
    pub kind: Kind,
    /// N of `tempN_input`.
    pub number: u32,
    /// `tempN_label`, if any.
    pub label: Option<String>,
    sensor: Sensor,
}

impl Channel {
    pub fn sensor(&self) -> &Sensor {
        &self.sensor
    }

    /// The attribute's stem, `temp1`.
    pub fn attr(&self) -> String {
        format!("{}{}", self.kind.prefix(), self.number)
    }
}

/// One hwmon device.
#[derive(Debug)]
pub struct Device {
    /// `hwmon3`
    pub dir_name: String,
    /// The `name` file (`coretemp`, `nvme`, `pwmfan`, ...).
    pub name: String,
    /// `device/power_state`, when the parent is a PCI device.
    power_state: Option<PowerState>,
    pub channels: Vec<Channel>,
    /// True when the last scrape skipped the device because it was asleep.
    pub asleep: bool,
}

impl Device {
    /// Reads every channel into `out` (one slot per channel). An asleep device yields
    /// absent values and is not touched beyond `power_state`.
    pub fn read_into(&mut self, now: Instant, out: &mut [Option<f64>]) {
        self.asleep = self.power_state.as_ref().is_some_and(|p| !p.awake());
        for (slot, ch) in out.iter_mut().zip(self.channels.iter_mut()) {
            *slot = if self.asleep {
                None
            } else {
                ch.sensor.read(now).and_then(|raw| ch.kind.convert(raw))
            };
        }
    }
}

/// Parses a hwmon attribute file name: `temp1_input` -> (Temp, 1). `powerN_average`
/// is taken only when `powerN_input` is absent (decided by the caller).
pub fn parse_attr(file: &str) -> Option<(Kind, u32, &'static str)> {
    let table: [(&str, Kind, &'static str); 8] = [
        ("temp", Kind::Temp, "_input"),
        ("in", Kind::Voltage, "_input"),
        ("curr", Kind::Current, "_input"),
        ("power", Kind::Power, "_input"),
        ("power", Kind::Power, "_average"),
        ("energy", Kind::Energy, "_input"),
        ("fan", Kind::Fan, "_input"),
        ("pwm", Kind::Pwm, ""),
    ];
    for (prefix, kind, suffix) in table {
        let Some(rest) = file.strip_prefix(prefix) else {
            continue;
        };
        let Some(num) = rest.strip_suffix(suffix) else {
            continue;
        };
        if let Some(n) = suffix_number(num, "") {
            return Some((kind, n, suffix));
        }
    }
    None
}

/// Finds hwmon devices other than those with a dedicated probe.
pub fn discover(root: &SysRoot) -> Vec<Device> {
    let mut out = Vec::new();
    for dir_name in root.list(CLASS) {
        if suffix_number(&dir_name, "hwmon").is_none() {
            continue;
        }
        let dir = format!("{CLASS}/{dir_name}");
        let name = root
            .read_string(&format!("{dir}/name"))
            .unwrap_or_else(|_| dir_name.clone());
        if HANDLED_ELSEWHERE.contains(&name.as_str()) {
            continue;
        }
        let power_state = root.power_state(&format!("{dir}/device/power_state"));
        let awake_now = power_state.as_ref().is_none_or(|p| p.awake());
        let interval = root
            .read_i64(&format!("{dir}/update_interval"))
            .filter(|ms| *ms > 0)
            .map(|ms| Duration::from_millis(ms as u64))
            .unwrap_or(Duration::ZERO);
        let files = root.list(&dir);
        let mut channels: Vec<Channel> = Vec::new();
        for f in &files {
            let Some((kind, number, suffix)) = parse_attr(f) else {
                continue;
            };
            if suffix == "_average" && files.contains(&format!("power{number}_input")) {
                continue;
            }
            let sensor = root.sensor(&format!("{dir}/{f}"), Radix::Decimal, interval);
            let label_file = match kind {
                Kind::Pwm => None,
                _ => Some(format!("{dir}/{}{number}_label", kind.prefix())),
            };
            // Labels of a sleeping device are left unread too.
            let label = match (&label_file, awake_now) {
                (Some(lf), true) => root.read_string(lf).ok(),
                _ => None,
            };
            channels.push(Channel {
                kind,
                number,
                label,
                sensor,
            });
        }
        channels.sort_by_key(|c| (c.kind as u8, c.number));
        out.push(Device {
            dir_name,
            name,
            power_state,
            channels,
            asleep: !awake_now,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_names() {
        assert_eq!(parse_attr("temp1_input"), Some((Kind::Temp, 1, "_input")));
        assert_eq!(parse_attr("in0_input"), Some((Kind::Voltage, 0, "_input")));
        assert_eq!(
            parse_attr("curr2_input"),
            Some((Kind::Current, 2, "_input"))
        );
        assert_eq!(
            parse_attr("power1_average"),
            Some((Kind::Power, 1, "_average"))
        );
        assert_eq!(parse_attr("fan1_input"), Some((Kind::Fan, 1, "_input")));
        assert_eq!(parse_attr("pwm1"), Some((Kind::Pwm, 1, "")));
        assert_eq!(parse_attr("pwm1_enable"), None);
        assert_eq!(parse_attr("temp1_crit"), None);
        assert_eq!(parse_attr("temp1_label"), None);
        assert_eq!(parse_attr("in0_lcrit_alarm"), None);
        assert_eq!(parse_attr("name"), None);
    }

    #[test]
    fn units() {
        assert_eq!(Kind::Temp.convert(45_850), Some(45.85));
        assert_eq!(Kind::Voltage.convert(5_064), Some(5.064));
        assert_eq!(Kind::Current.convert(1_168), Some(1.168));
        assert_eq!(Kind::Power.convert(7_500_000), Some(7.5));
        assert_eq!(Kind::Fan.convert(2_900), Some(2900.0));
    }
}
