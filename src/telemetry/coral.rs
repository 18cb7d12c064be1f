//! Coral Edge TPU on PCIe (`/sys/class/apex/apex_N`, gasket/apex driver).
//!
//! `temp` is m°C from the die ADC. The driver divides the TPU clock when `temp` reaches
//! `trip_point0_temp` (250 MHz), `trip_point1_temp` (125 MHz), `trip_point2_temp`
//! (62.5 MHz) (defaults 85/90/95 °C), but exports no throttle state: the level is
//! inferred here as the number of trip points at or below the temperature. The USB
//! Accelerator has no sysfs presence at all.

use std::time::{Duration, Instant};

use super::sensor::{PowerState, Radix, Sensor};
use super::sysroot::SysRoot;

const CLASS: &str = "/sys/class/apex";

/// One PCIe Edge TPU.
#[derive(Debug)]
pub struct EdgeTpu {
    /// `apex_0`
    pub name: String,
    /// Trip points in °C, ascending (read when found).
    pub trips_c: [Option<f64>; 3],
    /// Hardware shutdown threshold (`hw_temp_warn2`), °C, when enabled.
    pub shutdown_c: Option<f64>,
    temp: Sensor,
    power_state: Option<PowerState>,
    /// True when the last scrape skipped the device because it was asleep.
    pub asleep: bool,
}

impl EdgeTpu {
    /// Die temperature, °C. None while the PCIe device is not in D0.
    pub fn read_c(&mut self, now: Instant) -> Option<f64> {
        self.asleep = false;
        if self.power_state.as_ref().is_some_and(|p| !p.awake()) {
            self.asleep = true;
            return None;
        }
        self.temp.read(now).map(|m| m as f64 / 1000.0)
    }

    pub fn sensor(&self) -> &Sensor {
        &self.temp
    }
}

/// Inferred clock-divider level: 0 (full clock) to 3 (trip point 2 crossed).
pub fn dfs_level(temp_c: f64, trips_c: &[Option<f64>; 3]) -> u8 {
    trips_c
        .iter()
        .filter(|t| t.is_some_and(|t| temp_c >= t))
        .count() as u8
}

/// Finds PCIe Edge TPUs.
pub fn discover(root: &SysRoot) -> Vec<EdgeTpu> {
    let mut out = Vec::new();
    for name in root.list(CLASS) {
        if !name.starts_with("apex_") {
            continue;
        }
        let dir = format!("{CLASS}/{name}");
        let power_state = root.power_state(&format!("{dir}/device/power_state"));
        let millic = |f: &str| {
            root.read_i64(&format!("{dir}/{f}"))
                .map(|v| v as f64 / 1000.0)
        };
        let shutdown_c = match root.read_i64(&format!("{dir}/hw_temp_warn2_en")) {
            Some(1) => millic("hw_temp_warn2"),
            _ => None,
        };
        out.push(EdgeTpu {
            trips_c: [
                millic("trip_point0_temp"),
                millic("trip_point1_temp"),
                millic("trip_point2_temp"),
            ],
            shutdown_c,
            temp: root.sensor(&format!("{dir}/temp"), Radix::Decimal, Duration::ZERO),
            power_state,
            asleep: false,
            name,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_from_trip_points() {
        let trips = [Some(85.0), Some(90.0), Some(95.0)];
        assert_eq!(dfs_level(46.05, &trips), 0);
        assert_eq!(dfs_level(85.0, &trips), 1);
        assert_eq!(dfs_level(91.3, &trips), 2);
        assert_eq!(dfs_level(99.0, &trips), 3);
        assert_eq!(dfs_level(99.0, &[None, None, None]), 0);
    }
}
