//! The knee of the throughput curve and relative latency gains (DESIGN.md sections 4
//! and 15). Pure functions: callers build the curves (one per platform, model,
//! precision and batch mode; sequential and native batching are never mixed).

use serde::Serialize;

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
    let pts: Vec<CurvePoint> = curve
        .iter()
        .map(|&(batch, t)| CurvePoint::new(batch, t))
        .collect();
    analyse_knee(&pts, fraction).map(|a| a.knee())
}

/// Why a point is left out of the knee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Excluded {
    /// The configuration failed or has no usable throughput.
    Failed,
    /// The board throttled during the timed window: not steady-state.
    Throttled,
}

impl Excluded {
    pub fn as_str(self) -> &'static str {
        match self {
            Excluded::Failed => "failed",
            Excluded::Throttled => "throttled",
        }
    }
}

/// One point of a throughput curve.
#[derive(Debug, Clone, PartialEq)]
pub struct CurvePoint {
    pub batch: u32,
    /// Point estimate, samples per second.
    pub throughput_ips: f64,
    /// 95 % confidence interval of the throughput, when the record has one.
    pub ci: Option<(f64, f64)>,
    /// Set when the point must not count (failed, throttled).
    pub excluded: Option<Excluded>,
}

impl CurvePoint {
    /// A point with no interval and nothing against it.
    pub fn new(batch: u32, throughput_ips: f64) -> CurvePoint {
        CurvePoint {
            batch,
            throughput_ips,
            ci: None,
            excluded: None,
        }
    }

    /// The interval, or the point estimate on both sides when there is none (or it
    /// does not contain the estimate).
    fn bounds(&self) -> (f64, f64) {
        match self.ci {
            Some((lo, hi)) if lo <= self.throughput_ips && self.throughput_ips <= hi => (lo, hi),
            _ => (self.throughput_ips, self.throughput_ips),
        }
    }
}

/// The knee of one curve with its uncertainty.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KneeAnalysis {
    /// Smallest batch whose point estimate reaches `fraction` of the peak.
    pub batch: u32,
    pub throughput_ips: f64,
    pub peak_batch: u32,
    pub peak_throughput_ips: f64,
    /// Smallest batch that may reach the fraction: its interval's top is at least
    /// `fraction` times the bottom of the peak's interval.
    pub batch_low: u32,
    /// Smallest batch that surely reaches it: its interval's bottom is at least
    /// `fraction` times the top of the peak's interval; the peak batch when none does.
    /// Batches from `batch_low` to `batch_high` cannot be told apart from the fraction
    /// of the peak. Without intervals both equal `batch`.
    pub batch_high: u32,
    /// Smallest batch from which every larger batch's point estimate stays at or above
    /// the fraction; None when the largest batch falls below it.
    pub sustained_batch: Option<u32>,
    /// Whether any point carried an interval (else the range is the point knee).
    pub with_ci: bool,
    /// Points left out, by batch.
    pub excluded: Vec<(u32, Excluded)>,
}

impl KneeAnalysis {
    /// The plain knee.
    pub fn knee(&self) -> Knee {
        Knee {
            batch: self.batch,
            throughput_ips: self.throughput_ips,
            peak_batch: self.peak_batch,
            peak_throughput_ips: self.peak_throughput_ips,
        }
    }
}

/// Analyses one curve: peak (highest point estimate; on a tie the smaller batch), the
/// knee at `fraction` of it, the knee's range from the intervals, and the sustained
/// knee. Excluded points and points without a finite positive throughput are left out
/// (and listed). None when no point is usable.
pub fn analyse_knee(points: &[CurvePoint], fraction: f64) -> Option<KneeAnalysis> {
    let mut excluded: Vec<(u32, Excluded)> = Vec::new();
    let mut pts: Vec<&CurvePoint> = Vec::with_capacity(points.len());
    for p in points {
        match p.excluded {
            Some(why) => excluded.push((p.batch, why)),
            None if !(p.throughput_ips.is_finite() && p.throughput_ips > 0.0) => {
                excluded.push((p.batch, Excluded::Failed))
            }
            None => pts.push(p),
        }
    }
    excluded.sort_unstable();
    pts.sort_by_key(|p| p.batch);
    let peak = pts
        .iter()
        .fold(None::<&&CurvePoint>, |best, p| match best {
            Some(b) if b.throughput_ips >= p.throughput_ips => Some(b),
            _ => Some(p),
        })?;
    let threshold = fraction * peak.throughput_ips;
    let knee = pts.iter().find(|p| p.throughput_ips >= threshold)?;
    let (peak_lo, peak_hi) = peak.bounds();
    let batch_low = pts
        .iter()
        .find(|p| p.bounds().1 >= fraction * peak_lo)
        .map_or(knee.batch, |p| p.batch.min(knee.batch));
    let batch_high = pts
        .iter()
        .find(|p| p.bounds().0 >= fraction * peak_hi)
        .map_or(peak.batch, |p| p.batch)
        .max(knee.batch);
    // Walk down from the largest batch while points stay at or above the threshold.
    let mut sustained_batch = None;
    for p in pts.iter().rev() {
        if p.throughput_ips >= threshold {
            sustained_batch = Some(p.batch);
        } else {
            break;
        }
    }
    Some(KneeAnalysis {
        batch: knee.batch,
        throughput_ips: knee.throughput_ips,
        peak_batch: peak.batch,
        peak_throughput_ips: peak.throughput_ips,
        batch_low,
        batch_high,
        sustained_batch,
        with_ci: pts.iter().any(|p| p.ci.is_some()),
        excluded,
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

/// The in-sweep baseline of result `r`: the successful result on the baseline
/// `backend`/`ep` of the same architecture (the record's `arch`, else derived from the
/// model name, so a Coral `mobilenet_v2_edgetpu` pairs with a CPU `mobilenet_v2_quant`),
/// precision and batch; with the same thread count when the baseline ran several,
/// else the only one.
pub fn in_sweep_baseline<'a>(
    results: &'a [crate::bench::result::ResultRecord],
    r: &crate::bench::result::ResultRecord,
    backend: &str,
    ep: &str,
) -> Option<&'a crate::bench::result::ResultRecord> {
    use crate::models::arch_from_name;
    let arch = |x: &crate::bench::result::ResultRecord| {
        x.arch.clone().unwrap_or_else(|| arch_from_name(&x.model))
    };
    let want = arch(r);
    let candidates: Vec<_> = results
        .iter()
        .filter(|b| {
            b.status == "ok"
                && b.backend == backend
                && b.ep == ep
                && b.precision == r.precision
                && b.batch == r.batch
                && arch(b) == want
        })
        .collect();
    match candidates.iter().find(|b| b.threads == r.threads) {
        Some(b) => Some(b),
        None if candidates.len() == 1 => Some(candidates[0]),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_sweep_baseline_pairs_by_architecture_not_by_name() {
        use crate::bench::result::ResultRecord;
        let rec =
            |model: &str, arch: Option<&str>, ep: &str, threads: u32, batch: u32| ResultRecord {
                status: "ok".into(),
                model: model.into(),
                arch: arch.map(str::to_string),
                backend: "tflite".into(),
                ep: ep.into(),
                precision: "int8".into(),
                threads,
                batch,
                ..Default::default()
            };
        let results = vec![
            rec("mobilenet_v2_quant", Some("mobilenet_v2"), "cpu", 4, 1),
            rec("mobilenet_v2_quant", Some("mobilenet_v2"), "cpu", 4, 2),
            rec("ssdlite_mobiledet_quant", None, "cpu", 4, 1),
            rec(
                "mobilenet_v2_edgetpu",
                Some("mobilenet_v2"),
                "edgetpu",
                1,
                1,
            ),
            rec("mobilenet_v2_edgetpu", None, "edgetpu", 1, 2),
            rec("efficientnet_edgetpu", None, "edgetpu", 1, 1),
        ];
        // Another name, another thread count, same arch: paired (the only CPU run).
        let b = in_sweep_baseline(&results, &results[3], "tflite", "cpu").unwrap();
        assert_eq!((b.model.as_str(), b.batch), ("mobilenet_v2_quant", 1));
        // No `arch` in the record: derived from the name.
        let b = in_sweep_baseline(&results, &results[4], "tflite", "cpu").unwrap();
        assert_eq!(b.batch, 2);
        // Nothing of that arch on the baseline.
        assert!(in_sweep_baseline(&results, &results[5], "tflite", "cpu").is_none());
        // Several thread counts on the baseline: only the same one pairs.
        let mut more = results.clone();
        more.push(rec("mobilenet_v2_quant", Some("mobilenet_v2"), "cpu", 2, 1));
        assert!(in_sweep_baseline(&more, &more[3], "tflite", "cpu").is_none());
        let mut same = more.clone();
        same[3].threads = 2;
        assert_eq!(
            in_sweep_baseline(&same, &same[3], "tflite", "cpu")
                .unwrap()
                .threads,
            2
        );
        // A failed baseline run does not count.
        let mut failed = results.clone();
        failed[0].status = "failed".into();
        assert!(in_sweep_baseline(&failed, &failed[3], "tflite", "cpu").is_none());
    }

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

    fn pt(batch: u32, t: f64, lo: f64, hi: f64) -> CurvePoint {
        CurvePoint {
            ci: Some((lo, hi)),
            ..CurvePoint::new(batch, t)
        }
    }

    #[test]
    fn knee_range_from_intervals() {
        // Peak 300 at batch 8, interval [290, 310]. Fraction 0.95:
        // may reach: top >= 0.95 * 290 = 275.5 -> batch 2 (top 280) is the first;
        // surely reaches: bottom >= 0.95 * 310 = 294.5 -> batch 8 (bottom 290) does not,
        // batch 16 (bottom 295) does. Point knee: >= 285 -> batch 4 (290).
        let c = [
            pt(1, 100.0, 95.0, 105.0),
            pt(2, 270.0, 260.0, 280.0),
            pt(4, 290.0, 280.0, 300.0),
            pt(8, 300.0, 290.0, 310.0),
            pt(16, 299.0, 295.0, 303.0),
        ];
        let a = analyse_knee(&c, 0.95).unwrap();
        assert_eq!((a.batch, a.peak_batch), (4, 8));
        assert_eq!((a.batch_low, a.batch_high), (2, 16));
        assert_eq!(a.sustained_batch, Some(4));
        assert!(a.with_ci);
        // Without intervals the range collapses onto the knee.
        let plain: Vec<CurvePoint> = c
            .iter()
            .map(|p| CurvePoint::new(p.batch, p.throughput_ips))
            .collect();
        let a = analyse_knee(&plain, 0.95).unwrap();
        assert_eq!((a.batch, a.batch_low, a.batch_high), (4, 4, 4));
        assert!(!a.with_ci);
    }

    #[test]
    fn knee_range_falls_back_to_the_peak_when_nothing_is_sure() {
        // Wide peak interval [200, 400]: nothing has bottom >= 0.9 * 400 = 360, so the
        // high end is the peak batch 4; low: top >= 0.9 * 200 = 180 -> batch 1 (top 190).
        let c = [
            pt(1, 150.0, 110.0, 190.0),
            pt(2, 250.0, 200.0, 300.0),
            pt(4, 300.0, 200.0, 400.0),
        ];
        let a = analyse_knee(&c, 0.9).unwrap();
        // Point knee: >= 270 -> batch 4.
        assert_eq!((a.batch, a.batch_low, a.batch_high), (4, 1, 4));
    }

    #[test]
    fn sustained_knee_on_a_non_monotone_curve() {
        // Threshold 0.95 * 300 = 285. Batch 2 reaches it, batch 4 dips below, 8 and 16
        // stay above: knee 2, sustained knee 8.
        let c = [(1, 100.0), (2, 290.0), (4, 250.0), (8, 300.0), (16, 286.0)];
        let pts: Vec<CurvePoint> = c.iter().map(|&(b, t)| CurvePoint::new(b, t)).collect();
        let a = analyse_knee(&pts, 0.95).unwrap();
        assert_eq!((a.batch, a.sustained_batch, a.peak_batch), (2, Some(8), 8));
        // The largest batch falling below: no sustained knee.
        let mut pts = pts;
        pts.push(CurvePoint::new(32, 200.0));
        assert_eq!(analyse_knee(&pts, 0.95).unwrap().sustained_batch, None);
    }

    #[test]
    fn ties_pick_the_smaller_batch_and_equal_counts_as_reaching() {
        // Two peaks of 200: the smaller batch is the peak. 0.5 * 200 = 100 exactly at
        // batch 1: equal reaches.
        let pts: Vec<CurvePoint> = [(1, 100.0), (2, 200.0), (4, 200.0), (8, 150.0)]
            .iter()
            .map(|&(b, t)| CurvePoint::new(b, t))
            .collect();
        let a = analyse_knee(&pts, 0.5).unwrap();
        assert_eq!((a.peak_batch, a.batch, a.sustained_batch), (2, 1, Some(1)));
        assert_eq!(analyse_knee(&pts, 1.0).unwrap().batch, 2);
    }

    #[test]
    fn throttled_and_failed_points_are_listed_and_left_out() {
        // The throttled batch 8 would be the peak (500); without it the peak is 300 at 4.
        let pts = vec![
            CurvePoint::new(1, 100.0),
            CurvePoint::new(2, f64::NAN),
            CurvePoint::new(4, 300.0),
            CurvePoint {
                excluded: Some(Excluded::Throttled),
                ..CurvePoint::new(8, 500.0)
            },
            CurvePoint {
                excluded: Some(Excluded::Failed),
                ..CurvePoint::new(16, 0.0)
            },
        ];
        let a = analyse_knee(&pts, 0.95).unwrap();
        assert_eq!((a.batch, a.peak_batch), (4, 4));
        assert_eq!(
            a.excluded,
            vec![
                (2, Excluded::Failed),
                (8, Excluded::Throttled),
                (16, Excluded::Failed)
            ]
        );
        let none = [CurvePoint {
            excluded: Some(Excluded::Throttled),
            ..CurvePoint::new(1, 10.0)
        }];
        assert!(analyse_knee(&none, 0.95).is_none());
    }
}
