//! Warm-up and stop rules of the timed phase (DESIGN.md section 4), as pure decisions.

use super::stats::{batch_means, median_rel_ci, CiStat};
use crate::config::ProtocolConfig;

/// Why the timed phase stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Both `min_runs` and `min_s` were met (no confidence target set).
    MinReached,
    /// The confidence target on the median was met after the minimums.
    CiTarget,
    /// `max_s` was reached (the minimums may not have been met).
    MaxTime,
    /// The sweep was cancelled.
    Cancelled,
    /// The latency buffer, sized before timing for `max_s` at the warm-up's pace, is
    /// full (the runs got much faster than warm-up); it is never grown while timing.
    BufferFull,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::MinReached => "min_runs_and_time",
            StopReason::CiTarget => "ci_target",
            StopReason::MaxTime => "max_time",
            StopReason::Cancelled => "cancelled",
            StopReason::BufferFull => "buffer_full",
        }
    }
}

/// Warm-up is done once both minimums are met (and never beyond `max_s`).
pub fn warmup_done(p: &ProtocolConfig, runs: u64, elapsed_s: f64) -> bool {
    (runs >= p.warmup_runs as u64 && elapsed_s >= p.warmup_s) || elapsed_s >= p.max_s
}

/// Decision after each timed run. `rel_ci` is the latest relative CI half-width of the
/// median (None when not computed this time).
pub fn should_stop(
    p: &ProtocolConfig,
    runs: u64,
    elapsed_s: f64,
    rel_ci: Option<f64>,
) -> Option<StopReason> {
    if elapsed_s >= p.max_s {
        return Some(StopReason::MaxTime);
    }
    let minimums = runs >= p.min_runs as u64 && elapsed_s >= p.min_s;
    if !minimums {
        return None;
    }
    if p.target_rel_ci <= 0.0 {
        return Some(StopReason::MinReached);
    }
    match rel_ci {
        Some(ci) if ci <= p.target_rel_ci => Some(StopReason::CiTarget),
        _ => None,
    }
}

/// The relative 95 % CI half-width the stop rule compares with `target_rel_ci`: of the
/// median (order statistics; sorts a copy into `scratch`, which must have the capacity
/// of `lat_ms` so nothing is allocated) or of the mean latency (batch means, one pass).
/// None when there are too few runs for an interval.
pub fn target_rel_ci_now(stat: CiStat, lat_ms: &[f64], scratch: &mut Vec<f64>) -> Option<f64> {
    match stat {
        CiStat::Median => {
            scratch.clear();
            scratch.extend_from_slice(lat_ms);
            scratch.sort_unstable_by(f64::total_cmp);
            Some(median_rel_ci(scratch)).filter(|c| c.is_finite())
        }
        CiStat::Mean => batch_means(lat_ms).map(|b| b.rel()),
    }
}

/// Capacity to reserve for latencies so the timed loop never reallocates: enough for
/// `max_s` at the warm-up's pace plus headroom, at least `min_runs`, capped.
pub fn latency_capacity(p: &ProtocolConfig, warmup_mean_s: f64) -> usize {
    const CAP: usize = 20_000_000;
    let by_time = if warmup_mean_s > 0.0 {
        (p.max_s / warmup_mean_s * 1.5) as usize
    } else {
        CAP
    };
    by_time.max(p.min_runs as usize + 16).min(CAP)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> ProtocolConfig {
        ProtocolConfig {
            min_runs: 10,
            min_s: 1.0,
            max_s: 5.0,
            warmup_runs: 2,
            warmup_s: 0.5,
            ..Default::default()
        }
    }

    #[test]
    fn needs_both_minimums() {
        let p = p();
        assert_eq!(should_stop(&p, 9, 2.0, None), None);
        assert_eq!(should_stop(&p, 100, 0.9, None), None);
        assert_eq!(should_stop(&p, 10, 1.0, None), Some(StopReason::MinReached));
    }

    #[test]
    fn max_time_wins() {
        assert_eq!(should_stop(&p(), 3, 5.0, None), Some(StopReason::MaxTime));
    }

    #[test]
    fn ci_target_waits_for_minimums_and_target() {
        let p = ProtocolConfig {
            target_rel_ci: 0.01,
            ..p()
        };
        assert_eq!(should_stop(&p, 5, 2.0, Some(0.001)), None);
        assert_eq!(should_stop(&p, 20, 2.0, Some(0.05)), None);
        assert_eq!(should_stop(&p, 20, 2.0, None), None);
        assert_eq!(
            should_stop(&p, 20, 2.0, Some(0.005)),
            Some(StopReason::CiTarget)
        );
        assert_eq!(
            should_stop(&p, 20, 5.1, Some(0.05)),
            Some(StopReason::MaxTime)
        );
    }

    #[test]
    fn the_stop_rule_targets_the_median_or_the_mean() {
        // 40 runs: the first half at 10 ms, the second at 12 ms (a clock step down).
        // Median CI: n = 40, ranks 20 -/+ 1.96 * sqrt(40) / 2 = 6.2 -> 13 and 27, i.e.
        // values 10 and 12: half-width 1 ms on a median of 10 ms -> 0.1.
        // Mean CI by batch means: 10 blocks of 4, five at 10 and five at 12 ms; mean 11,
        // s = sqrt(10 / 9), half-width 2.262 * s / sqrt(10) = 2.262 / 3 -> 0.0685 of 11.
        let v: Vec<f64> = (0..40).map(|i| if i < 20 { 10.0 } else { 12.0 }).collect();
        let mut scratch = Vec::with_capacity(v.len());
        let med = target_rel_ci_now(CiStat::Median, &v, &mut scratch).unwrap();
        assert!((med - 0.1).abs() < 1e-12, "{med}");
        let mean = target_rel_ci_now(CiStat::Mean, &v, &mut scratch).unwrap();
        assert!((mean - 2.262 / 3.0 / 11.0).abs() < 1e-12, "{mean}");
        assert_eq!(scratch.capacity(), 40, "no reallocation");
        // A target of 0.08 stops on the mean, not on the median.
        let p = ProtocolConfig {
            target_rel_ci: 0.08,
            ..p()
        };
        assert_eq!(should_stop(&p, 40, 2.0, Some(med)), None);
        assert_eq!(
            should_stop(&p, 40, 2.0, Some(mean)),
            Some(StopReason::CiTarget)
        );
        // Too few runs for either interval.
        assert_eq!(target_rel_ci_now(CiStat::Mean, &v[..5], &mut scratch), None);
        assert_eq!(
            target_rel_ci_now(CiStat::Median, &v[..5], &mut scratch),
            None
        );
    }

    #[test]
    fn warmup_needs_runs_and_time() {
        let p = p();
        assert!(!warmup_done(&p, 1, 1.0));
        assert!(!warmup_done(&p, 5, 0.1));
        assert!(warmup_done(&p, 2, 0.5));
        assert!(warmup_done(&p, 0, 5.0));
    }

    #[test]
    fn capacity_covers_max_time() {
        let p = p();
        // max_s 5 at 1 ms per run, with 1.5x headroom.
        assert_eq!(latency_capacity(&p, 0.001), 7500);
        // Slower than max_s: the floor is min_runs + 16.
        assert_eq!(latency_capacity(&p, 10.0), 26);
        // Unknown pace, or absurdly fast: the cap.
        assert_eq!(latency_capacity(&p, 0.0), 20_000_000);
        assert_eq!(latency_capacity(&p, 1e-12), 20_000_000);
        assert_eq!(StopReason::BufferFull.as_str(), "buffer_full");
    }
}
