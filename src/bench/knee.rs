//! The knee of the throughput curve and relative latency gains (DESIGN.md section 4).

/// The knee of one throughput-versus-batch curve.
#[derive(Debug, Clone, PartialEq)]
pub struct Knee {
    /// Smallest batch whose throughput is at least `fraction` of the peak.
    pub batch: u32,
    pub throughput_ips: f64,
    pub peak_batch: u32,
    pub peak_throughput_ips: f64,
}

/// Finds the knee among `(batch, throughput)` points (any order; non-finite or
/// non-positive throughputs are ignored). None when no point is usable.
pub fn find_knee(curve: &[(u32, f64)], fraction: f64) -> Option<Knee> {
    let mut pts: Vec<(u32, f64)> = curve
        .iter()
        .copied()
        .filter(|(_, t)| t.is_finite() && *t > 0.0)
        .collect();
    pts.sort_by_key(|(b, _)| *b);
    // Peak: highest throughput; on a tie the smaller batch.
    let &(peak_batch, peak) = pts.iter().fold(None::<&(u32, f64)>, |best, p| match best {
        Some(b) if b.1 >= p.1 => Some(b),
        _ => Some(p),
    })?;
    let &(batch, throughput_ips) = pts.iter().find(|(_, t)| *t >= fraction * peak)?;
    Some(Knee {
        batch,
        throughput_ips,
        peak_batch,
        peak_throughput_ips: peak,
    })
}

/// Relative latency gain of a candidate over a baseline for the same model and batch:
/// `latency_baseline / latency_candidate` (above 1: the candidate is faster).
pub fn relative_gain(latency_baseline_ms: f64, latency_candidate_ms: f64) -> Option<f64> {
    if latency_baseline_ms > 0.0 && latency_candidate_ms > 0.0 {
        Some(latency_baseline_ms / latency_candidate_ms)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knee_is_smallest_batch_within_fraction_of_peak() {
        let c = [(1, 100.0), (2, 180.0), (4, 290.0), (8, 300.0), (16, 295.0)];
        let k = find_knee(&c, 0.95).unwrap();
        // 0.95 * 300 = 285: batch 4 (290) is the first to reach it.
        assert_eq!(k.batch, 4);
        assert_eq!(k.peak_batch, 8);
        assert_eq!(k.peak_throughput_ips, 300.0);
        assert_eq!(find_knee(&c, 1.0).unwrap().batch, 8);
        assert_eq!(find_knee(&c, 0.3).unwrap().batch, 1);
    }

    #[test]
    fn knee_ignores_failed_points_and_order() {
        let c = [(8, f64::NAN), (2, 50.0), (1, 49.0), (4, 0.0)];
        let k = find_knee(&c, 0.95).unwrap();
        assert_eq!((k.batch, k.peak_batch), (1, 2));
        assert!(find_knee(&[], 0.95).is_none());
        assert!(find_knee(&[(1, 0.0)], 0.95).is_none());
    }

    #[test]
    fn gain_is_baseline_over_candidate() {
        assert_eq!(relative_gain(10.0, 2.5), Some(4.0));
        assert_eq!(relative_gain(2.0, 4.0), Some(0.5));
        assert_eq!(relative_gain(0.0, 4.0), None);
    }
}
