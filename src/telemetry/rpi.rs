//! Raspberry Pi under-voltage and firmware throttle signals.
//!
//! - hwmon `rpi_volt`, `in0_lcrit_alarm`: under-voltage seen in the driver's last 2 s
//!   poll (the preferred interface).
//! - `soc:firmware/get_throttled`: the firmware's throttle word, hex without `0x`
//!   (bits 0-3 now: under-voltage, ARM frequency capped, throttled, soft temperature
//!   limit; bits 16-19 the same, sticky). Deprecated: newer Raspberry Pi kernels log a
//!   one-time kernel warning when it is first read, so reading it can be switched off.
//!
//! The Pi 5 fan (hwmon `pwmfan`: `fan1_input`, `pwm1`) and cooling device `pwm-fan`
//! are read by hwmon.rs and thermal.rs.

use std::time::{Duration, Instant};

use super::sensor::{Radix, Sensor};
use super::sysroot::SysRoot;

/// Where `get_throttled` lives: Pi 4 and earlier, then any `*:firmware` platform node.
const GET_THROTTLED: &str = "/sys/devices/platform/soc/soc:firmware/get_throttled";
const PLATFORM: &str = "/sys/devices/platform";

/// Bits of the throttle word that describe "now", with their reason names.
pub const NOW_BITS: [(u32, &str); 4] = [
    (0, "rpi_under_voltage"),
    (1, "rpi_freq_capped"),
    (2, "rpi_throttled"),
    (3, "rpi_soft_temp_limit"),
];

/// Raspberry Pi signals found on this board.
#[derive(Debug, Default)]
pub struct RpiSignals {
    throttled: Option<Sensor>,
    uv_alarm: Option<Sensor>,
}

impl RpiSignals {
    /// True when any signal exists.
    pub fn present(&self) -> bool {
        self.throttled.is_some() || self.uv_alarm.is_some()
    }

    /// Names of the files found (for `probe`).
    pub fn found(&self) -> Vec<&str> {
        self.throttled
            .iter()
            .chain(self.uv_alarm.iter())
            .map(|s| s.path())
            .collect()
    }

    /// The firmware throttle word.
    pub fn read_bits(&mut self, now: Instant) -> Option<u32> {
        self.throttled
            .as_mut()?
            .read(now)
            .and_then(|v| u32::try_from(v).ok())
    }

    /// Under-voltage alarm of `rpi_volt`.
    pub fn read_uv_alarm(&mut self, now: Instant) -> Option<bool> {
        self.uv_alarm.as_mut()?.read(now).map(|v| v != 0)
    }
}

/// Reason names for the "now" bits set in `bits`.
pub fn now_reasons(bits: u32) -> impl Iterator<Item = &'static str> {
    NOW_BITS
        .into_iter()
        .filter(move |(b, _)| bits & (1 << b) != 0)
        .map(|(_, r)| r)
}

/// Finds the signals. `read_get_throttled`: whether the deprecated firmware file may be
/// read.
pub fn discover(root: &SysRoot, read_get_throttled: bool) -> RpiSignals {
    let mut out = RpiSignals::default();
    if read_get_throttled {
        let mut path = root
            .exists(GET_THROTTLED)
            .then(|| GET_THROTTLED.to_string());
        if path.is_none() {
            'outer: for node in root.list(PLATFORM) {
                for child in root.list(&format!("{PLATFORM}/{node}")) {
                    if child.ends_with(":firmware") {
                        let p = format!("{PLATFORM}/{node}/{child}/get_throttled");
                        if root.exists(&p) {
                            path = Some(p);
                            break 'outer;
                        }
                    }
                }
            }
        }
        out.throttled = path.map(|p| root.sensor(&p, Radix::Hex, Duration::ZERO));
    }
    for hw in root.list(super::hwmon::CLASS) {
        let dir = format!("{}/{hw}", super::hwmon::CLASS);
        if root.read_string(&format!("{dir}/name")).ok().as_deref() == Some("rpi_volt") {
            out.uv_alarm = root.sensor_if_exists(&format!("{dir}/in0_lcrit_alarm"), Radix::Decimal);
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_now_bits_and_ignores_sticky_ones() {
        assert_eq!(now_reasons(0).count(), 0);
        assert_eq!(now_reasons(0x50000).count(), 0);
        assert_eq!(
            now_reasons(0x50005).collect::<Vec<_>>(),
            vec!["rpi_under_voltage", "rpi_throttled"]
        );
        assert_eq!(
            now_reasons(0xA).collect::<Vec<_>>(),
            vec!["rpi_freq_capped", "rpi_soft_temp_limit"]
        );
    }
}
