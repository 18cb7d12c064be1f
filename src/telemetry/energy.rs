//! Energy from power samples: trapezoid rule over monotonic time, inside the timed
//! window only. The result is an on-board estimate of the rails in `power_scope`, not
//! wall power (see the reference notes on what such an estimate may claim).

use std::time::Instant;

/// What `energy_method` says in records.
pub const METHOD: &str = "onboard-estimate:ina3221:trapezoid";

/// Running trapezoid integral of power samples.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Trapezoid {
    first: Option<Instant>,
    prev: Option<(Instant, f64)>,
    energy_j: f64,
    max_w: Option<f64>,
    n: u32,
}

impl Trapezoid {
    /// Adds a sample taken at `t`. Samples must come in time order; a non-finite power
    /// is skipped (the integral then spans the gap linearly).
    pub fn push(&mut self, t: Instant, watts: f64) {
        if !watts.is_finite() {
            return;
        }
        match self.prev {
            Some((t0, w0)) => {
                let dt = t.saturating_duration_since(t0).as_secs_f64();
                self.energy_j += (w0 + watts) * 0.5 * dt;
            }
            None => self.first = Some(t),
        }
        self.prev = Some((t, watts));
        self.max_w = Some(self.max_w.map_or(watts, |m| m.max(watts)));
        self.n += 1;
    }

    /// Samples taken.
    pub fn count(&self) -> u32 {
        self.n
    }

    /// Seconds between the first and the last sample.
    pub fn span_s(&self) -> f64 {
        match (self.first, self.prev) {
            (Some(a), Some((b, _))) => b.saturating_duration_since(a).as_secs_f64(),
            _ => 0.0,
        }
    }

    /// Energy in J; needs two samples.
    pub fn energy_j(&self) -> Option<f64> {
        (self.n >= 2 && self.span_s() > 0.0).then_some(self.energy_j)
    }

    /// Time-weighted mean power, W (the single value when only one sample exists).
    pub fn mean_w(&self) -> Option<f64> {
        match self.n {
            0 => None,
            1 => self.prev.map(|(_, w)| w),
            _ => self.energy_j().map(|e| e / self.span_s()),
        }
    }

    pub fn max_w(&self) -> Option<f64> {
        self.max_w
    }

    /// Achieved sample rate, Hz.
    pub fn rate_hz(&self) -> Option<f64> {
        let span = self.span_s();
        (self.n >= 2 && span > 0.0).then(|| (self.n - 1) as f64 / span)
    }
}

/// Energy per inferred sample, mJ.
pub fn per_sample_mj(energy_j: f64, samples: u64) -> Option<f64> {
    (samples > 0).then(|| energy_j * 1000.0 / samples as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn constant_power_over_known_time() {
        let t0 = Instant::now();
        let mut tr = Trapezoid::default();
        for i in 0..=20 {
            tr.push(t0 + Duration::from_millis(100 * i), 5.0);
        }
        assert!(close(tr.span_s(), 2.0));
        assert!(close(tr.energy_j().expect("energy"), 10.0));
        assert!(close(tr.mean_w().expect("mean"), 5.0));
        assert!(close(tr.rate_hz().expect("rate"), 10.0));
        assert!(close(per_sample_mj(10.0, 400).expect("per sample"), 25.0));
    }

    #[test]
    fn ramp_and_uneven_spacing_are_exact_for_linear_power() {
        // P(t) = 10 t W over 1 s: 5 J, whatever the sample times.
        let t0 = Instant::now();
        let mut tr = Trapezoid::default();
        for ms in [0u64, 130, 170, 500, 910, 1000] {
            tr.push(t0 + Duration::from_millis(ms), 10.0 * ms as f64 / 1000.0);
        }
        assert!(close(tr.energy_j().expect("energy"), 5.0));
        assert!(close(tr.mean_w().expect("mean"), 5.0));
        assert_eq!(tr.max_w(), Some(10.0));
    }

    #[test]
    fn too_few_samples() {
        let mut tr = Trapezoid::default();
        assert_eq!(tr.energy_j(), None);
        assert_eq!(tr.mean_w(), None);
        tr.push(Instant::now(), 3.0);
        assert_eq!(tr.energy_j(), None);
        assert_eq!(tr.mean_w(), Some(3.0));
        assert_eq!(per_sample_mj(1.0, 0), None);
    }
}
