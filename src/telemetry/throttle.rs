//! Throttle rules: pure functions over scrapes.
//!
//! A window is throttled when any of these fired inside it:
//! - `cpu_freq_below_cap`: in two consecutive scrapes, no busy CPU policy ran within
//!   `freq_drop_fraction` of its cap (the cap in force at window start; intel_pstate's
//!   base clock on x86). Only policies whose busiest CPU was at least `BUSY_MIN` busy
//!   since the previous scrape are judged (when `/proc/stat` is readable): an idle CPU,
//!   e.g. waiting on a GPU or Edge TPU, is clocked down by its governor by design. Of
//!   those, the fastest policy counts, and two scrapes are needed so one scrape landing
//!   in a pause between inference calls does not fire it;
//! - `cpu_freq_cap_lowered` / `gpu_freq_cap_lowered`: `scaling_max_freq` / the GPU's
//!   devfreq `max_freq` dropped below its value at window start;
//! - `thermal_throttle_count` / `thermal_throttle_time`: x86 core or package counters
//!   moved (the count moves when an event starts, the time only when it ends);
//! - `cooling_state_raised`: a throttling cooling device stepped above its start state
//!   (fans excluded);
//! - `rail_current_alarm`: a Jetson INA3221 over-current alarm;
//! - `edgetpu_trip_point`: an Edge TPU at or above a trip point (its clock is divided);
//! - `rpi_*`: a Raspberry Pi firmware bit (now bits, or sticky bits newly set) or the
//!   `rpi_volt` under-voltage alarm.

use super::probes::CpuSample;

pub const CPU_FREQ_BELOW_CAP: &str = "cpu_freq_below_cap";
pub const CPU_FREQ_CAP_LOWERED: &str = "cpu_freq_cap_lowered";
pub const GPU_FREQ_CAP_LOWERED: &str = "gpu_freq_cap_lowered";
pub const THERMAL_THROTTLE_COUNT: &str = "thermal_throttle_count";
pub const THERMAL_THROTTLE_TIME: &str = "thermal_throttle_time";
pub const COOLING_STATE_RAISED: &str = "cooling_state_raised";
pub const RAIL_CURRENT_ALARM: &str = "rail_current_alarm";
pub const EDGETPU_TRIP_POINT: &str = "edgetpu_trip_point";
pub const RPI_UNDER_VOLTAGE: &str = "rpi_under_voltage";

/// Consecutive scrapes below the threshold needed to fire `cpu_freq_below_cap`.
pub const BELOW_CAP_SCRAPES: u32 = 2;

/// Busy fraction from which a CPU is expected to run at its cap.
pub const BUSY_MIN: f64 = 0.9;

/// The fastest busy policy relative to its cap: (ratio, frequency MHz, cap MHz).
/// `caps[i]` is policy i's cap for the window; `load_known`: whether `busy` is
/// measured (if not, every policy is judged).
pub fn lead_ratio(
    cpu: &[CpuSample],
    caps: &[Option<f64>],
    load_known: bool,
) -> Option<(f64, f64, f64)> {
    let mut best: Option<(f64, f64, f64)> = None;
    for (s, cap) in cpu.iter().zip(caps) {
        if load_known && s.busy.is_none_or(|b| b < BUSY_MIN) {
            continue;
        }
        let (Some(cur), Some(cap)) = (s.cur_mhz, *cap) else {
            continue;
        };
        if cap <= 0.0 {
            continue;
        }
        let r = cur / cap;
        if best.is_none_or(|(b, _, _)| r > b) {
            best = Some((r, cur, cap));
        }
    }
    best
}

/// The cap of a policy for a window: the base clock where the driver reports one
/// (intel_pstate: turbo clocks above it vary with load and are not throttling), else
/// `scaling_max_freq` at window start.
pub fn window_cap(s: &CpuSample) -> Option<f64> {
    s.base_mhz.or(s.max_mhz)
}

/// Tracks "frequency below cap for `BELOW_CAP_SCRAPES` scrapes in a row".
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FreqRule {
    /// Ratio under which a scrape counts as below cap (`1 - freq_drop_fraction`).
    pub threshold: f64,
    run: u32,
    pub fired: bool,
    /// Lowest lead (ratio, MHz, cap MHz) seen.
    pub floor: Option<(f64, f64, f64)>,
}

impl FreqRule {
    pub fn new(freq_drop_fraction: f64) -> FreqRule {
        FreqRule {
            threshold: 1.0 - freq_drop_fraction,
            ..FreqRule::default()
        }
    }

    /// Feeds one scrape's lead ratio.
    pub fn push(&mut self, lead: Option<(f64, f64, f64)>) {
        let Some(l) = lead else {
            self.run = 0;
            return;
        };
        if self.floor.is_none_or(|f| l.0 < f.0) {
            self.floor = Some(l);
        }
        if l.0 < self.threshold {
            self.run += 1;
            if self.run >= BELOW_CAP_SCRAPES {
                self.fired = true;
            }
        } else {
            self.run = 0;
        }
    }
}

/// True when a counter went up between two readings.
pub fn moved(first: Option<i64>, last: Option<i64>) -> bool {
    matches!((first, last), (Some(a), Some(b)) if b > a)
}

/// True when a cap went down (beyond float noise).
pub fn lowered(start: Option<f64>, now: Option<f64>) -> bool {
    matches!((start, now), (Some(a), Some(b)) if b < a - 1e-6)
}

/// Raspberry Pi sticky bits (16-19) set now but not at window start, shifted down to
/// the now-bit positions.
pub fn rpi_new_sticky(first: u32, now: u32) -> u32 {
    ((now & !first) >> 16) & 0xf
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(cur: f64, max: f64) -> CpuSample {
        CpuSample {
            cur_mhz: Some(cur),
            max_mhz: Some(max),
            base_mhz: None,
            busy: Some(1.0),
        }
    }

    #[test]
    fn idle_little_cores_do_not_count() {
        let s = [cpu(1510.4, 1510.4), cpu(115.2, 1510.4)];
        let caps = [Some(1510.4), Some(1510.4)];
        assert_eq!(lead_ratio(&s, &caps, false).map(|l| l.0), Some(1.0));
    }

    #[test]
    fn only_busy_policies_are_held_to_their_cap() {
        let mut waiting = cpu(600.0, 1500.0);
        waiting.busy = Some(0.2);
        let caps = [Some(1500.0)];
        // An accelerator run: the CPU idles at 600 MHz; not a throttle.
        assert_eq!(lead_ratio(&[waiting], &caps, true), None);
        // Load unknown: judged anyway.
        assert_eq!(
            lead_ratio(&[waiting], &caps, false).map(|l| l.1),
            Some(600.0)
        );
        let busy = cpu(600.0, 1500.0);
        assert_eq!(lead_ratio(&[busy], &caps, true).map(|l| l.0), Some(0.4));
    }

    #[test]
    fn one_low_scrape_is_not_enough() {
        let mut r = FreqRule::new(0.10);
        r.push(Some((1.0, 1500.0, 1500.0)));
        r.push(Some((0.5, 750.0, 1500.0)));
        r.push(Some((1.0, 1500.0, 1500.0)));
        assert!(!r.fired);
        r.push(Some((0.5, 750.0, 1500.0)));
        r.push(Some((0.89, 1335.0, 1500.0)));
        assert!(r.fired);
        assert_eq!(r.floor, Some((0.5, 750.0, 1500.0)));
    }

    #[test]
    fn within_fraction_is_fine() {
        let mut r = FreqRule::new(0.10);
        for _ in 0..5 {
            r.push(Some((0.91, 1365.0, 1500.0)));
        }
        assert!(!r.fired);
    }

    #[test]
    fn x86_cap_is_the_base_clock() {
        let s = CpuSample {
            cur_mhz: Some(3900.0),
            max_mhz: Some(4700.0),
            base_mhz: Some(2800.0),
            busy: None,
        };
        assert_eq!(window_cap(&s), Some(2800.0));
        assert_eq!(window_cap(&cpu(1.0, 1500.0)), Some(1500.0));
    }

    #[test]
    fn counters_caps_and_sticky_bits() {
        assert!(moved(Some(3), Some(4)));
        assert!(!moved(Some(3), Some(3)));
        assert!(!moved(None, Some(3)));
        assert!(lowered(Some(1510.4), Some(1420.8)));
        assert!(!lowered(Some(1510.4), Some(1510.4)));
        assert_eq!(rpi_new_sticky(0x0, 0x50000), 0x5);
        assert_eq!(rpi_new_sticky(0x50000, 0x50000), 0x0);
    }
}
