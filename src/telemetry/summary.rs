//! Running aggregates of one timed window, turned into a [`WindowSummary`].
//!
//! Memory is fixed by the board's probe count, not by the window's length: the
//! sampler keeps no sample history.

use std::time::Instant;

use super::cpufreq::CounterKind;
use super::energy::{self, Trapezoid};
use super::probes::Scrape;
use super::throttle::{self, FreqRule};
use super::{rpi, WindowSummary};

/// Aggregates of the scrapes of one window.
#[derive(Debug, Clone)]
pub struct Accum {
    n: u32,
    first: Option<Instant>,
    last: Option<Instant>,
    temp_start: Option<f64>,
    temp_max: Option<f64>,
    temp_end: Option<f64>,
    cooling_start: Vec<Option<i64>>,
    cooling_raised: bool,
    cpu_cap: Vec<Option<f64>>,
    cpu_max_start: Vec<Option<f64>>,
    cpu_cap_lowered: bool,
    freq: FreqRule,
    counters_first: Vec<Option<i64>>,
    counters_last: Vec<Option<i64>>,
    counter_kind: Vec<CounterKind>,
    gpu_max_start: Vec<Option<f64>>,
    gpu_cap_lowered: bool,
    rail_alarm: Option<bool>,
    tpu_level_max: Option<u8>,
    rpi_first: Option<u32>,
    rpi_now: Option<u32>,
    rpi_sticky_new: u32,
    rpi_uv: Option<bool>,
    signals: bool,
    power: Trapezoid,
}

impl Accum {
    /// Aggregates shaped like `shape` (allocates here, never in [`Accum::push`]).
    pub fn new(shape: &Scrape, freq_drop_fraction: f64) -> Accum {
        Accum {
            n: 0,
            first: None,
            last: None,
            temp_start: None,
            temp_max: None,
            temp_end: None,
            cooling_start: vec![None; shape.cooling.len()],
            cooling_raised: false,
            cpu_cap: vec![None; shape.cpu.len()],
            cpu_max_start: vec![None; shape.cpu.len()],
            cpu_cap_lowered: false,
            freq: FreqRule::new(freq_drop_fraction),
            counters_first: vec![None; shape.counters.len()],
            counters_last: vec![None; shape.counters.len()],
            counter_kind: shape.counters.iter().map(|c| c.kind).collect(),
            gpu_max_start: vec![None; shape.devfreq.len()],
            gpu_cap_lowered: false,
            rail_alarm: None,
            tpu_level_max: None,
            rpi_first: None,
            rpi_now: None,
            rpi_sticky_new: 0,
            rpi_uv: None,
            signals: false,
            power: Trapezoid::default(),
        }
    }

    /// Scrapes taken.
    pub fn count(&self) -> u32 {
        self.n
    }

    /// True when any throttle signal was readable.
    pub fn has_signals(&self) -> bool {
        self.signals
    }

    /// Adds one scrape.
    pub fn push(&mut self, s: &Scrape) {
        let first = self.n == 0;
        self.n += 1;
        if first {
            self.first = Some(s.mono);
            self.temp_start = s.hottest_c;
        }
        self.last = Some(s.mono);
        if let Some(t) = s.hottest_c {
            self.temp_max = Some(self.temp_max.map_or(t, |m| m.max(t)));
        }
        self.temp_end = s.hottest_c;

        for (i, c) in s.cooling.iter().enumerate() {
            if !c.throttles || c.state.is_none() {
                continue;
            }
            self.signals = true;
            let start = &mut self.cooling_start[i];
            if start.is_none() {
                *start = c.state;
            } else if matches!((*start, c.state), (Some(a), Some(b)) if b > a) {
                self.cooling_raised = true;
            }
        }

        for (i, c) in s.cpu.iter().enumerate() {
            if self.cpu_cap[i].is_none() {
                self.cpu_cap[i] = throttle::window_cap(c);
            }
            if self.cpu_max_start[i].is_none() {
                self.cpu_max_start[i] = c.max_mhz;
            } else if throttle::lowered(self.cpu_max_start[i], c.max_mhz) {
                self.cpu_cap_lowered = true;
            }
        }
        let lead = throttle::lead_ratio(&s.cpu, &self.cpu_cap, s.load_known);
        self.signals |= lead.is_some();
        self.freq.push(lead);

        for (i, c) in s.counters.iter().enumerate() {
            if c.value.is_none() {
                continue;
            }
            self.signals = true;
            if self.counters_first[i].is_none() {
                self.counters_first[i] = c.value;
            }
            self.counters_last[i] = c.value;
        }

        for (i, d) in s.devfreq.iter().enumerate() {
            if !d.gpu || d.max_mhz.is_none() {
                continue;
            }
            self.signals = true;
            if self.gpu_max_start[i].is_none() {
                self.gpu_max_start[i] = d.max_mhz;
            } else if throttle::lowered(self.gpu_max_start[i], d.max_mhz) {
                self.gpu_cap_lowered = true;
            }
        }

        if let Some(a) = s.rail_alarm {
            self.rail_alarm = Some(self.rail_alarm.unwrap_or(false) | a);
        }
        if let Some(l) = s.tpu_level {
            self.tpu_level_max = Some(self.tpu_level_max.unwrap_or(0).max(l));
        }
        if let Some(bits) = s.rpi_bits {
            let first = *self.rpi_first.get_or_insert(bits);
            self.rpi_now = Some(self.rpi_now.unwrap_or(0) | (bits & 0xf));
            self.rpi_sticky_new |= throttle::rpi_new_sticky(first, bits);
        }
        if let Some(a) = s.rpi_uv_alarm {
            self.rpi_uv = Some(self.rpi_uv.unwrap_or(false) | a);
        }
        self.signals |= s.rail_alarm.is_some()
            || s.tpu_level.is_some()
            || s.rpi_bits.is_some()
            || s.rpi_uv_alarm.is_some();

        if let Some(p) = s.board_power_w {
            self.power.push(s.mono, p);
        }
    }

    /// Throttle reasons fired so far (machine-readable names, see throttle.rs).
    pub fn reasons(&self) -> Vec<String> {
        let mut r: Vec<&'static str> = Vec::new();
        if self.freq.fired {
            r.push(throttle::CPU_FREQ_BELOW_CAP);
        }
        if self.cpu_cap_lowered {
            r.push(throttle::CPU_FREQ_CAP_LOWERED);
        }
        if self.gpu_cap_lowered {
            r.push(throttle::GPU_FREQ_CAP_LOWERED);
        }
        let moved = |kind: CounterKind| {
            (0..self.counter_kind.len()).any(|i| {
                self.counter_kind[i] == kind
                    && throttle::moved(self.counters_first[i], self.counters_last[i])
            })
        };
        if moved(CounterKind::Count) {
            r.push(throttle::THERMAL_THROTTLE_COUNT);
        }
        if moved(CounterKind::TimeMs) {
            r.push(throttle::THERMAL_THROTTLE_TIME);
        }
        if self.cooling_raised {
            r.push(throttle::COOLING_STATE_RAISED);
        }
        if self.rail_alarm == Some(true) {
            r.push(throttle::RAIL_CURRENT_ALARM);
        }
        if self.tpu_level_max.is_some_and(|l| l > 0) {
            r.push(throttle::EDGETPU_TRIP_POINT);
        }
        let bits = self.rpi_now.unwrap_or(0) | self.rpi_sticky_new;
        for reason in rpi::now_reasons(bits) {
            r.push(reason);
        }
        if self.rpi_uv == Some(true) && !r.contains(&throttle::RPI_UNDER_VOLTAGE) {
            r.push(throttle::RPI_UNDER_VOLTAGE);
        }
        r.into_iter().map(str::to_string).collect()
    }

    /// The summary of the window. `samples`: inferred samples (batch x calls), for
    /// energy per sample; `power_scope`: the rails summed.
    pub fn summarize(&self, samples: u64, power_scope: Option<&str>) -> WindowSummary {
        let reasons = self.reasons();
        let throttled = self.signals.then_some(!reasons.is_empty());
        let energy_j = self.power.energy_j();
        let has_power = self.power.count() > 0;
        WindowSummary {
            temp_c_start: self.temp_start,
            temp_c_max: self.temp_max,
            temp_c_end: self.temp_end,
            throttled,
            throttle_reasons: reasons,
            freq_mhz_min: self.freq.floor.map(|f| f.1),
            freq_mhz_cap: self.freq.floor.map(|f| f.2),
            power_w_mean: self.power.mean_w(),
            power_w_max: self.power.max_w(),
            energy_j,
            energy_mj_per_sample: energy_j.and_then(|e| energy::per_sample_mj(e, samples)),
            power_scope: power_scope.filter(|_| has_power).map(str::to_string),
            power_sample_hz: self.power.rate_hz(),
            energy_method: energy_j.map(|_| energy::METHOD.to_string()),
            edgetpu_dfs_level_max: self.tpu_level_max,
            scrapes: self.n,
            window_s: match (self.first, self.last) {
                (Some(a), Some(b)) => Some(b.saturating_duration_since(a).as_secs_f64()),
                _ => None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::probes::{CoolingSample, CounterSample, CpuSample, DevfreqSample};
    use std::time::Duration;

    fn scrape(t0: Instant, ms: u64) -> Scrape {
        Scrape {
            mono: t0 + Duration::from_millis(ms),
            hottest_c: Some(50.0),
            cooling: vec![
                CoolingSample {
                    state: Some(0),
                    throttles: true,
                },
                CoolingSample {
                    state: Some(1),
                    throttles: false,
                },
            ],
            cpu: vec![CpuSample {
                cur_mhz: Some(1510.4),
                max_mhz: Some(1510.4),
                base_mhz: None,
                busy: Some(1.0),
            }],
            load_known: true,
            counters: vec![
                CounterSample {
                    kind: CounterKind::Count,
                    value: Some(7),
                },
                CounterSample {
                    kind: CounterKind::TimeMs,
                    value: Some(120),
                },
            ],
            devfreq: vec![DevfreqSample {
                gpu: true,
                cur_mhz: Some(306.0),
                max_mhz: Some(625.0),
                load_pct: Some(13.7),
            }],
            board_power_w: Some(5.0),
            ..Scrape::default()
        }
    }

    #[test]
    fn quiet_window_is_not_throttled() {
        let t0 = Instant::now();
        let first = scrape(t0, 0);
        let mut acc = Accum::new(&first, 0.1);
        for ms in [0, 100, 200, 300] {
            let mut s = scrape(t0, ms);
            s.hottest_c = Some(50.0 + ms as f64 / 100.0);
            acc.push(&s);
        }
        let w = acc.summarize(100, Some("VDD_IN"));
        assert_eq!(w.throttled, Some(false));
        assert!(w.throttle_reasons.is_empty());
        assert_eq!(
            (w.temp_c_start, w.temp_c_max, w.temp_c_end),
            (Some(50.0), Some(53.0), Some(53.0))
        );
        assert_eq!(
            (w.freq_mhz_min, w.freq_mhz_cap),
            (Some(1510.4), Some(1510.4))
        );
        // 5 W for 0.3 s = 1.5 J over 100 samples = 15 mJ each.
        assert!((w.energy_mj_per_sample.expect("energy") - 15.0).abs() < 1e-9);
        assert_eq!(w.power_scope.as_deref(), Some("VDD_IN"));
        assert!((w.power_sample_hz.expect("rate") - 10.0).abs() < 1e-9);
        assert_eq!(w.scrapes, 4);
    }

    #[test]
    fn each_signal_gives_its_reason() {
        let t0 = Instant::now();
        let base = scrape(t0, 0);
        let check = |change: &dyn Fn(&mut Scrape), want: &str| {
            let mut acc = Accum::new(&base, 0.1);
            acc.push(&base);
            for ms in [100, 200] {
                let mut s = scrape(t0, ms);
                change(&mut s);
                acc.push(&s);
            }
            let w = acc.summarize(1, None);
            assert_eq!(w.throttled, Some(true), "{want}");
            assert_eq!(w.throttle_reasons, vec![want.to_string()]);
        };
        check(
            &|s| s.cooling[0].state = Some(2),
            throttle::COOLING_STATE_RAISED,
        );
        check(
            &|s| s.counters[1].value = Some(130),
            throttle::THERMAL_THROTTLE_TIME,
        );
        check(
            &|s| s.counters[0].value = Some(8),
            throttle::THERMAL_THROTTLE_COUNT,
        );
        check(
            &|s| s.devfreq[0].max_mhz = Some(420.75),
            throttle::GPU_FREQ_CAP_LOWERED,
        );
        check(
            &|s| s.cpu[0].cur_mhz = Some(1000.0),
            throttle::CPU_FREQ_BELOW_CAP,
        );
        check(&|s| s.rail_alarm = Some(true), throttle::RAIL_CURRENT_ALARM);
        check(&|s| s.tpu_level = Some(1), throttle::EDGETPU_TRIP_POINT);
        check(&|s| s.rpi_bits = Some(0x8), "rpi_soft_temp_limit");
        check(
            &|s| s.rpi_uv_alarm = Some(true),
            throttle::RPI_UNDER_VOLTAGE,
        );
    }

    #[test]
    fn fan_speeding_up_is_not_throttling() {
        let t0 = Instant::now();
        let base = scrape(t0, 0);
        let mut acc = Accum::new(&base, 0.1);
        acc.push(&base);
        let mut s = scrape(t0, 100);
        s.cooling[1].state = Some(4);
        acc.push(&s);
        assert_eq!(acc.summarize(1, None).throttled, Some(false));
    }

    #[test]
    fn nothing_readable_means_unknown_not_false() {
        let s = Scrape::default();
        let mut acc = Accum::new(&s, 0.1);
        acc.push(&s);
        let w = acc.summarize(10, None);
        assert_eq!(w.throttled, None);
        assert_eq!(w.power_w_mean, None);
        assert_eq!(w.energy_mj_per_sample, None);
        assert_eq!(w.temp_c_start, None);
    }
}
