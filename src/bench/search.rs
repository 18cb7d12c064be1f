//! `--batch auto`: finds the knee of the throughput curve without sweeping a fixed grid.
//!
//! A pure state machine; the runner measures what [`KneeSearch::next`] asks for (with
//! the same cool-down and protocol as any point) and feeds each outcome back with
//! [`KneeSearch::record`].
//!
//! 1. Grow: batch 1, 2, 4, ... until the newest point is, with confidence, no higher
//!    than the best so far by more than the knee tolerance (its CI upper end is below
//!    the best point's CI lower end divided by `knee_fraction`): throughput is past its
//!    peak or on its plateau, so larger batches cannot move the knee. A failed point
//!    (out of memory, ...) or `max_batch` also ends growth, and so do two doublings in
//!    a row whose estimates stay within the tolerance of the best (a flat curve too
//!    noisy for a confident decision).
//! 2. Refine: the knee among the measured points (smallest batch within
//!    `knee_fraction` of the peak, as in the summary) lies between its measured lower
//!    neighbour and itself; bisect that gap, at most `refine_points` times, until the
//!    two are adjacent batches.

use serde::{Deserialize, Serialize};

use super::knee::find_knee;

/// `[batch_search]`: how `--batch auto` searches.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BatchSearchConfig {
    /// Largest batch the search may grow to.
    pub max_batch: u32,
    /// Most points measured between two grid points to refine the knee (0: none).
    pub refine_points: u32,
}

impl Default for BatchSearchConfig {
    fn default() -> Self {
        BatchSearchConfig {
            max_batch: 64,
            refine_points: 2,
        }
    }
}

impl BatchSearchConfig {
    /// Range checks; `at` names where the values came from.
    pub fn validate(&self, at: &str) -> anyhow::Result<()> {
        if self.max_batch == 0 || self.max_batch > crate::config::MAX_BATCH {
            anyhow::bail!(
                "{at}: `max_batch` must be in 1..={}, got {}",
                crate::config::MAX_BATCH,
                self.max_batch
            );
        }
        if self.refine_points > 16 {
            anyhow::bail!(
                "{at}: `refine_points` must be at most 16, got {}",
                self.refine_points
            );
        }
        Ok(())
    }
}

/// A measured point: throughput and its 95 % interval, samples/s.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    pub throughput_ips: f64,
    pub ci_low: f64,
    pub ci_high: f64,
}

impl Measured {
    /// A point whose interval is unknown (too few runs) counts as unbounded, so it
    /// never ends growth on its own.
    pub fn new(throughput_ips: f64, ci: Option<(f64, f64)>) -> Measured {
        let (ci_low, ci_high) = ci.unwrap_or((0.0, f64::INFINITY));
        Measured {
            throughput_ips,
            ci_low,
            ci_high,
        }
    }
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Measure this batch.
    Measure(u32),
    /// Finished.
    Done,
}

/// Why growth stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrowthEnd {
    /// The newest point is significantly below the best one.
    PastPeak,
    /// The newest point cannot be above the best one by more than the knee tolerance.
    Plateau,
    /// A point failed (e.g. out of memory).
    Failed,
    /// The next doubling would pass `max_batch`.
    MaxBatch,
    /// Two doublings in a row did not lift the best throughput estimate by more than
    /// the knee tolerance, though noise kept either from being confident: the fallback
    /// that keeps a noisy flat curve from being grown to `max_batch`.
    Stalled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Grow,
    Refine,
    Done,
}

/// The search's state.
#[derive(Debug, Clone)]
pub struct KneeSearch {
    max_batch: u32,
    refine_left: u32,
    fraction: f64,
    /// Points in the order measured; None: the point failed.
    points: Vec<(u32, Option<Measured>)>,
    phase: Phase,
    pending: Option<u32>,
    growth_end: Option<GrowthEnd>,
    /// Doublings in a row whose estimate stayed within the tolerance of the best.
    stalls: u32,
}

/// Doublings in a row without a tolerance-sized gain that end growth.
const STALL_LIMIT: u32 = 2;

impl KneeSearch {
    /// Starts at batch 1. `fraction` is the knee fraction of the peak.
    pub fn new(cfg: &BatchSearchConfig, fraction: f64) -> KneeSearch {
        KneeSearch {
            max_batch: cfg.max_batch.max(1),
            refine_left: cfg.refine_points,
            fraction,
            points: Vec::new(),
            phase: Phase::Grow,
            pending: Some(1),
            growth_end: None,
            stalls: 0,
        }
    }

    /// The next step.
    pub fn next(&self) -> Step {
        match (self.phase, self.pending) {
            (Phase::Done, _) | (_, None) => Step::Done,
            (_, Some(b)) => Step::Measure(b),
        }
    }

    /// Why growth stopped (None while growing).
    pub fn growth_end(&self) -> Option<GrowthEnd> {
        self.growth_end
    }

    /// Most points a search can measure (for progress estimates).
    pub fn max_points(cfg: &BatchSearchConfig) -> usize {
        (32 - cfg.max_batch.max(1).leading_zeros()) as usize + cfg.refine_points as usize
    }

    /// Batches measured so far, in order.
    pub fn batches(&self) -> Vec<u32> {
        self.points.iter().map(|(b, _)| *b).collect()
    }

    /// The knee among the points measured so far (smallest batch within the fraction
    /// of the peak, as in the summary record).
    pub fn knee(&self) -> Option<u32> {
        find_knee(&self.curve(), self.fraction).map(|k| k.batch)
    }

    fn curve(&self) -> Vec<(u32, f64)> {
        self.points
            .iter()
            .filter_map(|(b, m)| m.map(|m| (*b, m.throughput_ips)))
            .collect()
    }

    /// Feeds back the outcome of measuring `batch` (None: it failed).
    pub fn record(&mut self, batch: u32, outcome: Option<Measured>) {
        if self.pending != Some(batch) {
            // Not what was asked for: keep the point, do not advance.
            self.points.push((batch, outcome));
            return;
        }
        self.points.push((batch, outcome));
        self.pending = None;
        match self.phase {
            Phase::Grow => match self.grow_decision(batch, outcome) {
                None if self.stalls >= STALL_LIMIT => {
                    self.growth_end = Some(GrowthEnd::Stalled);
                    self.phase = Phase::Refine;
                    self.plan_refinement();
                }
                None => self.pending = Some(batch * 2),
                Some(end) => {
                    self.growth_end = Some(end);
                    self.phase = Phase::Refine;
                    self.plan_refinement();
                }
            },
            Phase::Refine => {
                if outcome.is_none() {
                    self.phase = Phase::Done;
                } else {
                    self.plan_refinement();
                }
            }
            Phase::Done => {}
        }
    }

    fn grow_decision(&mut self, batch: u32, outcome: Option<Measured>) -> Option<GrowthEnd> {
        let Some(m) = outcome else {
            return Some(GrowthEnd::Failed);
        };
        let best_before = self
            .points
            .iter()
            .filter(|(b, _)| *b < batch)
            .filter_map(|(_, m)| *m)
            .max_by(|a, b| a.throughput_ips.total_cmp(&b.throughput_ips));
        if let Some(best) = best_before {
            if m.ci_high < best.ci_low {
                return Some(GrowthEnd::PastPeak);
            }
            if m.ci_high < best.ci_low / self.fraction {
                return Some(GrowthEnd::Plateau);
            }
            if m.throughput_ips < best.throughput_ips / self.fraction {
                self.stalls += 1;
            } else {
                self.stalls = 0;
            }
        }
        if batch.saturating_mul(2) > self.max_batch {
            return Some(GrowthEnd::MaxBatch);
        }
        None
    }

    /// Picks the next bisection point between the knee and its measured lower
    /// neighbour, or finishes.
    fn plan_refinement(&mut self) {
        self.pending = None;
        if self.refine_left == 0 {
            self.phase = Phase::Done;
            return;
        }
        let Some(knee) = self.knee() else {
            self.phase = Phase::Done;
            return;
        };
        let below = self
            .points
            .iter()
            .filter(|(b, m)| *b < knee && m.is_some())
            .map(|(b, _)| *b)
            .max();
        match below {
            Some(lo) if knee - lo > 1 => {
                let mid = lo + (knee - lo) / 2;
                if self.points.iter().any(|(b, _)| *b == mid) {
                    self.phase = Phase::Done;
                } else {
                    self.refine_left -= 1;
                    self.pending = Some(mid);
                }
            }
            _ => self.phase = Phase::Done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(max_batch: u32, refine_points: u32) -> BatchSearchConfig {
        BatchSearchConfig {
            max_batch,
            refine_points,
        }
    }

    /// A point with a +-2 % interval.
    fn pt(t: f64) -> Option<Measured> {
        Some(Measured::new(t, Some((t * 0.98, t * 1.02))))
    }

    /// Runs the search against a curve, returning the batches measured in order.
    fn drive(s: &mut KneeSearch, curve: impl Fn(u32) -> Option<Measured>) -> Vec<u32> {
        let mut guard = 0;
        while let Step::Measure(b) = s.next() {
            s.record(b, curve(b));
            guard += 1;
            assert!(guard < 100, "search does not end");
        }
        s.batches()
    }

    #[test]
    fn grows_until_past_the_peak_then_bisects_to_the_knee() {
        // Peak at 8 (400/s); 16 falls to 300 (well below 400 * 0.98). Knee at 0.95:
        // 380 -> among the grid 1, 2, 4, 8, 16 it is 8 (4 gives 300). Bisect (4, 8]:
        // 6 gives 390 >= 380 -> knee 6; then (4, 6]: 5 gives 350 < 380 -> knee stays 6,
        // neighbours 5 and 6 are adjacent: done.
        let t = |b: u32| match b {
            1 => 100.0,
            2 => 180.0,
            4 => 300.0,
            5 => 350.0,
            6 => 390.0,
            8 => 400.0,
            16 => 300.0,
            _ => panic!("batch {b} should not be measured"),
        };
        let mut s = KneeSearch::new(&cfg(64, 4), 0.95);
        assert_eq!(s.next(), Step::Measure(1));
        let order = drive(&mut s, |b| pt(t(b)));
        assert_eq!(order, vec![1, 2, 4, 8, 16, 6, 5]);
        assert_eq!(s.growth_end(), Some(GrowthEnd::PastPeak));
        assert_eq!(s.knee(), Some(6));
        assert_eq!(s.next(), Step::Done);
    }

    #[test]
    fn a_plateau_ends_growth_before_max_batch() {
        // 4 -> 8 gains 1 %: 8's upper end 404 * 1.02 = 412.1 is below 4's lower end
        // 400 * 0.98 / 0.95 = 412.6, so growth stops at 8 (not significantly past the
        // peak, but unable to move the knee). Knee: 4 (400 >= 0.95 * 404). Refine
        // (2, 4]: 3 at 390 >= 383.8 -> knee 3; (2, 3] adjacent: done.
        let t = |b: u32| match b {
            1 => 150.0,
            2 => 300.0,
            3 => 390.0,
            4 => 400.0,
            8 => 404.0,
            _ => panic!("batch {b} should not be measured"),
        };
        let mut s = KneeSearch::new(&cfg(64, 2), 0.95);
        assert_eq!(drive(&mut s, |b| pt(t(b))), vec![1, 2, 4, 8, 3]);
        assert_eq!(s.growth_end(), Some(GrowthEnd::Plateau));
        assert_eq!(s.knee(), Some(3));
    }

    #[test]
    fn a_gain_inside_the_noise_does_not_end_growth() {
        // Gains of 6 % per doubling (above the 5.3 % tolerance of 0.95) with a wide
        // +-10 % interval: never a confident plateau, never a stall, so growth runs to
        // max_batch (32), then refinement is capped at 1.
        let t = |b: u32| 100.0 * 1.06f64.powi(b.trailing_zeros() as i32);
        let wide = |b: u32| Some(Measured::new(t(b), Some((t(b) * 0.9, t(b) * 1.1))));
        let mut s = KneeSearch::new(&cfg(32, 1), 0.95);
        let order = drive(&mut s, |b| {
            if b.is_power_of_two() {
                wide(b)
            } else {
                wide(b.next_power_of_two())
            }
        });
        assert_eq!(&order[..6], &[1, 2, 4, 8, 16, 32]);
        assert_eq!(s.growth_end(), Some(GrowthEnd::MaxBatch));
        // Peak 32 (133.8); 0.95 of it is 127.1: 16 (126.2) is below, so 32 is the
        // knee; bisect (16, 32] once: 24.
        assert_eq!(order.len(), 7);
        assert_eq!(order[6], 24);
    }

    #[test]
    fn a_noisy_flat_curve_stalls_after_two_doublings() {
        // Wide +-30 % intervals, estimates within a few % of each other: no confident
        // decision, but 2 and 4 both fail to beat 100 / 0.95: growth stops at 4.
        let t = |b: u32| match b {
            1 => 100.0,
            2 => 97.0,
            4 => 103.0,
            _ => panic!("batch {b} should not be measured"),
        };
        let noisy = |b: u32| Some(Measured::new(t(b), Some((t(b) * 0.7, t(b) * 1.3))));
        let mut s = KneeSearch::new(&cfg(64, 2), 0.95);
        assert_eq!(drive(&mut s, noisy), vec![1, 2, 4]);
        assert_eq!(s.growth_end(), Some(GrowthEnd::Stalled));
        assert_eq!(s.knee(), Some(1));
        // One gain beyond the tolerance resets the count.
        let t2 = |b: u32| match b {
            1 => 100.0,
            2 => 97.0,
            4 => 120.0,
            8 => 118.0,
            16 => 121.0,
            3 => 110.0,
            _ => panic!("batch {b} should not be measured"),
        };
        let noisy2 = |b: u32| Some(Measured::new(t2(b), Some((t2(b) * 0.7, t2(b) * 1.3))));
        let mut s = KneeSearch::new(&cfg(64, 1), 0.95);
        assert_eq!(drive(&mut s, noisy2), vec![1, 2, 4, 8, 16, 3]);
        assert_eq!(s.growth_end(), Some(GrowthEnd::Stalled));
    }

    #[test]
    fn unknown_intervals_never_end_growth_with_confidence() {
        // Throughput still rising 10 % per doubling, intervals unknown (too few runs):
        // no confident decision and no stall, so growth runs to max_batch.
        let mut s = KneeSearch::new(&cfg(8, 0), 0.95);
        let order = drive(&mut s, |b| {
            Some(Measured::new(
                100.0 * 1.1f64.powi(b.trailing_zeros() as i32),
                None,
            ))
        });
        assert_eq!(order, vec![1, 2, 4, 8]);
        assert_eq!(s.growth_end(), Some(GrowthEnd::MaxBatch));
        assert_eq!(s.knee(), Some(8));
        // Flat with unknown intervals: only the stall fallback ends growth.
        let mut s = KneeSearch::new(&cfg(64, 0), 0.95);
        assert_eq!(
            drive(&mut s, |_| Some(Measured::new(100.0, None))),
            vec![1, 2, 4]
        );
        assert_eq!(s.growth_end(), Some(GrowthEnd::Stalled));
    }

    #[test]
    fn a_failed_point_ends_growth_and_the_knee_uses_the_rest() {
        // 16 runs out of memory: growth ends, knee among 1..8 = 8 (peak 400, 4 -> 360
        // < 380), bisect (4, 8]: 6.
        let t = |b: u32| match b {
            1 => Some(100.0),
            2 => Some(200.0),
            4 => Some(360.0),
            6 => Some(395.0),
            8 => Some(400.0),
            16 => None,
            5 => Some(370.0),
            _ => panic!("batch {b}"),
        };
        let mut s = KneeSearch::new(&cfg(64, 2), 0.95);
        let order = drive(&mut s, |b| t(b).and_then(pt));
        assert_eq!(order, vec![1, 2, 4, 8, 16, 6, 5]);
        assert_eq!(s.growth_end(), Some(GrowthEnd::Failed));
        assert_eq!(s.knee(), Some(6));
        // A failed refinement point ends the search.
        let mut s = KneeSearch::new(&cfg(64, 2), 0.95);
        let order = drive(&mut s, |b| if b == 6 { None } else { t(b).and_then(pt) });
        assert_eq!(order, vec![1, 2, 4, 8, 16, 6]);
        assert_eq!(s.knee(), Some(8));
    }

    #[test]
    fn knee_at_batch_one_needs_no_refinement() {
        // Flat from the start: 2 is a plateau; knee 1.
        let mut s = KneeSearch::new(&cfg(64, 2), 0.95);
        assert_eq!(drive(&mut s, |_| pt(50.0)), vec![1, 2]);
        assert_eq!(s.knee(), Some(1));
        assert_eq!(s.growth_end(), Some(GrowthEnd::Plateau));
    }

    #[test]
    fn max_batch_one_measures_one_point() {
        let mut s = KneeSearch::new(&cfg(1, 2), 0.95);
        assert_eq!(drive(&mut s, |_| pt(50.0)), vec![1]);
        assert_eq!(s.growth_end(), Some(GrowthEnd::MaxBatch));
        assert_eq!(KneeSearch::max_points(&cfg(64, 2)), 9);
        assert_eq!(KneeSearch::max_points(&cfg(1, 0)), 1);
    }

    #[test]
    fn config_ranges() {
        assert!(cfg(64, 2).validate("batch_search").is_ok());
        let e = cfg(0, 2).validate("batch_search").unwrap_err().to_string();
        assert!(e.contains("max_batch"), "{e}");
        let e = cfg(8, 99).validate("batch_search").unwrap_err().to_string();
        assert!(e.contains("refine_points"), "{e}");
    }
}
