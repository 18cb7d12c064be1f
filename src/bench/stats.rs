//! Latency statistics over one configuration's timed runs (DESIGN.md section 4).

/// Summary statistics of latencies in milliseconds (per batch call).
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    pub count: usize,
    pub sum_ms: f64,
    pub mean: f64,
    /// Sample standard deviation (n - 1); 0 for a single value.
    pub std: f64,
    pub min: f64,
    pub max: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    /// Coefficient of variation, std / mean.
    pub cv: f64,
    /// Values further than 3 scaled MADs from the median.
    pub outliers: usize,
    /// Samples per second: `batch * count / sum` (seconds).
    pub throughput_ips: f64,
    /// Relative half-width of the 95 % confidence interval of the median.
    pub median_rel_ci: f64,
    /// 95 % confidence interval of the median ([`median_ci`]); None below 6 values.
    pub p50_ci: Option<(f64, f64)>,
}

/// Nearest-rank percentile of an ascending slice: the value at rank `ceil(p/100 * n)`
/// (1-based), so p0 is the minimum and p100 the maximum. `sorted` must be non-empty.
pub fn percentile_nearest_rank(sorted: &[f64], p: f64) -> f64 {
    debug_assert!(!sorted.is_empty());
    let n = sorted.len();
    // The tolerance keeps float error (99.9 / 100 * 1000 = 999.0000000000001) from
    // bumping an exact rank up by one.
    let exact = p * n as f64 / 100.0;
    let rank = (exact - exact.abs() * 1e-12).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

/// Median of an ascending slice (nearest rank, as the other percentiles).
fn median_sorted(sorted: &[f64]) -> f64 {
    percentile_nearest_rank(sorted, 50.0)
}

/// Outliers by the median-absolute-deviation rule: |x - median| > 3 * 1.4826 * MAD.
/// The 1.4826 factor makes the MAD estimate the standard deviation for normal data;
/// 3 such deviations is the usual "far out" threshold (as in hyperfine's modified
/// Z-score). A MAD of 0 (most values identical) counts nothing as an outlier.
pub fn mad_outliers(sorted: &[f64], scratch: &mut Vec<f64>) -> usize {
    if sorted.is_empty() {
        return 0;
    }
    let med = median_sorted(sorted);
    scratch.clear();
    scratch.extend(sorted.iter().map(|x| (x - med).abs()));
    scratch.sort_unstable_by(f64::total_cmp);
    let mad = median_sorted(scratch);
    if mad == 0.0 {
        return 0;
    }
    let limit = 3.0 * 1.4826 * mad;
    sorted.iter().filter(|x| (*x - med).abs() > limit).count()
}

/// Distribution-free 95 % confidence interval of the median: the order statistics at
/// ranks `n/2 -/+ 1.96 * sqrt(n) / 2` (normal approximation to the binomial count of
/// values below the median). `(low, high)` in the values' unit; None when there are too
/// few values for an interval (n < 6).
pub fn median_ci(sorted: &[f64]) -> Option<(f64, f64)> {
    let n = sorted.len();
    if n < 6 {
        return None;
    }
    let half = 1.96 * (n as f64).sqrt() / 2.0;
    let lo = ((n as f64 / 2.0 - half).floor() as usize).clamp(1, n) - 1;
    let hi = ((n as f64 / 2.0 + half).ceil() as usize).clamp(1, n) - 1;
    Some((sorted[lo], sorted[hi]))
}

/// Relative half-width of [`median_ci`]: half its width over the median. Returns
/// infinity when there are too few values for an interval (n < 6).
pub fn median_rel_ci(sorted: &[f64]) -> f64 {
    let Some((lo, hi)) = median_ci(sorted) else {
        return f64::INFINITY;
    };
    let med = median_sorted(sorted);
    if med <= 0.0 {
        return f64::INFINITY;
    }
    (hi - lo) / 2.0 / med
}

/// Which statistic a confidence-interval stop rule targets (`[protocol] ci_target_stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CiStat {
    /// The median latency: distribution-free CI from order statistics ([`median_rel_ci`]).
    #[default]
    Median,
    /// The mean latency (hence throughput): CI from batch means ([`batch_means`]).
    Mean,
}

/// Most blocks batch means splits a timed phase into.
pub const CI_BLOCKS: usize = 10;

/// 97.5 % quantiles of Student's t for 1..=30 degrees of freedom (two-sided 95 %).
const T975: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

/// Two-sided 95 % Student t quantile for `df` degrees of freedom (normal beyond 30).
pub fn t975(df: usize) -> f64 {
    match df {
        0 => f64::INFINITY,
        1..=30 => T975[df - 1],
        _ => 1.96,
    }
}

/// 95 % confidence interval of the mean latency by batch means.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchMeans {
    /// Number of blocks used.
    pub blocks: usize,
    /// Mean latency over all runs, ms.
    pub mean_ms: f64,
    /// Half-width of the 95 % CI of the mean latency, ms.
    pub half_width_ms: f64,
}

impl BatchMeans {
    /// Half-width relative to the mean.
    pub fn rel(&self) -> f64 {
        if self.mean_ms > 0.0 {
            self.half_width_ms / self.mean_ms
        } else {
            f64::INFINITY
        }
    }

    /// Throughput interval (samples/s) for `batch` samples per call: the mean latency
    /// interval inverted. None when its lower end is not above zero.
    pub fn throughput_ci(&self, batch: u32) -> Option<(f64, f64)> {
        let lo_ms = self.mean_ms - self.half_width_ms;
        let hi_ms = self.mean_ms + self.half_width_ms;
        if lo_ms.is_nan() || lo_ms <= 0.0 || !hi_ms.is_finite() {
            return None;
        }
        let b = batch as f64 * 1000.0;
        Some((b / hi_ms, b / lo_ms))
    }
}

/// Number of batch-means blocks for `n` runs: [`CI_BLOCKS`] once every block holds at
/// least two runs, else `n / 2` (blocks of two); None below three blocks.
pub fn block_count(n: usize) -> Option<usize> {
    let k = if n >= 2 * CI_BLOCKS { CI_BLOCKS } else { n / 2 };
    (k >= 3).then_some(k)
}

/// Batch means over runs in the order they ran: the runs are cut into `k` blocks of
/// consecutive runs (sizes differing by at most one) and the spread of the block means
/// gives the CI of the mean, `t(k-1) * s_blocks / sqrt(k)`. Runs correlated by clock or
/// thermal drift land in the same block, so drift widens the interval instead of
/// hiding in a per-run standard error. Allocates nothing (callable in the timed loop).
pub fn batch_means(lat_ms: &[f64]) -> Option<BatchMeans> {
    let n = lat_ms.len();
    let k = block_count(n)?;
    let mut means = [0.0f64; CI_BLOCKS];
    let (base, extra) = (n / k, n % k);
    let mut at = 0;
    for (j, m) in means.iter_mut().enumerate().take(k) {
        let len = base + usize::from(j < extra);
        let block = &lat_ms[at..at + len];
        *m = block.iter().sum::<f64>() / len as f64;
        at += len;
    }
    let means = &means[..k];
    let avg = means.iter().sum::<f64>() / k as f64;
    let var = means.iter().map(|m| (m - avg) * (m - avg)).sum::<f64>() / (k - 1) as f64;
    let mean_ms = lat_ms.iter().sum::<f64>() / n as f64;
    let half_width_ms = t975(k - 1) * var.sqrt() / (k as f64).sqrt();
    (mean_ms.is_finite() && half_width_ms.is_finite()).then_some(BatchMeans {
        blocks: k,
        mean_ms,
        half_width_ms,
    })
}

impl Stats {
    /// Statistics of latencies (ms per batch call) for `batch` samples per call.
    /// Returns None for an empty slice.
    pub fn compute(latencies_ms: &[f64], batch: u32) -> Option<Stats> {
        if latencies_ms.is_empty() {
            return None;
        }
        let mut sorted = latencies_ms.to_vec();
        sorted.sort_unstable_by(f64::total_cmp);
        let n = sorted.len();
        let sum: f64 = sorted.iter().sum();
        let mean = sum / n as f64;
        let var = if n > 1 {
            sorted.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        let std = var.sqrt();
        let mut scratch = Vec::with_capacity(n);
        Some(Stats {
            count: n,
            sum_ms: sum,
            mean,
            std,
            min: sorted[0],
            max: sorted[n - 1],
            p50: percentile_nearest_rank(&sorted, 50.0),
            p90: percentile_nearest_rank(&sorted, 90.0),
            p95: percentile_nearest_rank(&sorted, 95.0),
            p99: percentile_nearest_rank(&sorted, 99.0),
            p999: percentile_nearest_rank(&sorted, 99.9),
            cv: if mean > 0.0 { std / mean } else { 0.0 },
            outliers: mad_outliers(&sorted, &mut scratch),
            throughput_ips: if sum > 0.0 {
                batch as f64 * n as f64 / (sum / 1000.0)
            } else {
                0.0
            },
            median_rel_ci: median_rel_ci(&sorted),
            p50_ci: median_ci(&sorted),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_hand_computed() {
        // 1..=10: p50 -> rank 5 -> 5; p90 -> rank 9 -> 9; p95 -> ceil(9.5)=10 -> 10;
        // p99.9 -> ceil(9.99)=10 -> 10; p10 -> rank 1 -> 1; p0 -> clamped to rank 1.
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile_nearest_rank(&v, 50.0), 5.0);
        assert_eq!(percentile_nearest_rank(&v, 90.0), 9.0);
        assert_eq!(percentile_nearest_rank(&v, 95.0), 10.0);
        assert_eq!(percentile_nearest_rank(&v, 99.9), 10.0);
        assert_eq!(percentile_nearest_rank(&v, 10.0), 1.0);
        assert_eq!(percentile_nearest_rank(&v, 0.0), 1.0);
        // 1..=1000: p99.9 -> rank 999; p99 -> 990; p95 -> 950.
        let v: Vec<f64> = (1..=1000).map(f64::from).collect();
        assert_eq!(percentile_nearest_rank(&v, 99.9), 999.0);
        assert_eq!(percentile_nearest_rank(&v, 99.0), 990.0);
        assert_eq!(percentile_nearest_rank(&v, 95.0), 950.0);
    }

    #[test]
    fn stats_of_known_values() {
        // 2, 4, 4, 4, 5, 5, 7, 9: mean 5, sample std sqrt(32/7).
        let v = [4.0, 2.0, 5.0, 4.0, 9.0, 4.0, 7.0, 5.0];
        let s = Stats::compute(&v, 2).unwrap();
        assert_eq!(s.count, 8);
        assert_eq!(s.mean, 5.0);
        assert!((s.std - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
        assert_eq!((s.min, s.max), (2.0, 9.0));
        assert_eq!(s.p50, 4.0); // rank 4 of 8
        assert_eq!(s.p90, 9.0); // rank ceil(7.2) = 8
                                // throughput: 2 samples x 8 calls / 0.040 s = 400 samples/s
        assert!((s.throughput_ips - 400.0).abs() < 1e-9);
        assert!((s.cv - s.std / 5.0).abs() < 1e-12);
        assert!(Stats::compute(&[], 1).is_none());
    }

    #[test]
    fn mad_rule_flags_far_values_only() {
        let mut v: Vec<f64> = vec![10.0, 10.1, 9.9, 10.2, 9.8, 10.0, 10.1, 9.9, 50.0];
        v.sort_by(f64::total_cmp);
        assert_eq!(mad_outliers(&v, &mut Vec::new()), 1);
        let same = vec![3.0; 20];
        assert_eq!(mad_outliers(&same, &mut Vec::new()), 0);
    }

    #[test]
    fn median_ci_shrinks_with_more_data() {
        let few: Vec<f64> = (0..20).map(|i| 10.0 + (i % 5) as f64 * 0.1).collect();
        let many: Vec<f64> = (0..2000).map(|i| 10.0 + (i % 5) as f64 * 0.1).collect();
        let mut a = few.clone();
        a.sort_by(f64::total_cmp);
        let mut b = many.clone();
        b.sort_by(f64::total_cmp);
        assert!(median_rel_ci(&b) <= median_rel_ci(&a));
        assert!(median_rel_ci(&[1.0, 2.0]).is_infinite());
        let flat = vec![5.0; 100];
        assert_eq!(median_rel_ci(&flat), 0.0);
    }

    #[test]
    fn batch_means_hand_computed() {
        // 20 runs, 10 blocks of two: block means 10, 12, 10, 12, ... Their mean is 11,
        // sample variance 10 * 1 / 9, so s / sqrt(10) = 1/3 and the half-width is
        // t(9) / 3 = 2.262 / 3 = 0.754 ms. Batch 1: throughput CI is
        // [1000 / 11.754, 1000 / 10.246] = [85.077, 97.599] samples/s.
        let v: Vec<f64> = (0..20)
            .map(|i| if (i / 2) % 2 == 0 { 10.0 } else { 12.0 })
            .collect();
        let bm = batch_means(&v).unwrap();
        assert_eq!(bm.blocks, 10);
        assert!((bm.mean_ms - 11.0).abs() < 1e-12);
        assert!((bm.half_width_ms - 2.262 / 3.0).abs() < 1e-12);
        let (lo, hi) = bm.throughput_ci(1).unwrap();
        assert!((lo - 1000.0 / (11.0 + 2.262 / 3.0)).abs() < 1e-9, "{lo}");
        assert!((hi - 1000.0 / (11.0 - 2.262 / 3.0)).abs() < 1e-9, "{hi}");
        assert!((lo - 85.077).abs() < 1e-3 && (hi - 97.599).abs() < 1e-3);
        // Batch 4 scales both ends by four.
        let (lo4, hi4) = bm.throughput_ci(4).unwrap();
        assert!((lo4 - 4.0 * lo).abs() < 1e-9 && (hi4 - 4.0 * hi).abs() < 1e-9);
        assert!((bm.rel() - (2.262 / 3.0) / 11.0).abs() < 1e-12);
    }

    #[test]
    fn batch_means_block_sizes() {
        // 7 runs: 3 blocks of 3, 2, 2 runs: means 2, 4.5, 6.5 of 1..=7.
        // avg 13/3, deviations -7/3, 1/6, 13/6: var = (49/9 + 1/36 + 169/36) / 2
        // = (196 + 1 + 169) / 72 = 366 / 72; half = t(2) * sqrt(366/72) / sqrt(3).
        let v: Vec<f64> = (1..=7).map(f64::from).collect();
        let bm = batch_means(&v).unwrap();
        assert_eq!(bm.blocks, 3);
        assert!((bm.mean_ms - 4.0).abs() < 1e-12);
        let want = 4.303 * (366.0f64 / 72.0).sqrt() / 3.0f64.sqrt();
        assert!(
            (bm.half_width_ms - want).abs() < 1e-12,
            "{}",
            bm.half_width_ms
        );
        assert_eq!(block_count(5), None);
        assert_eq!(block_count(6), Some(3));
        assert_eq!(block_count(19), Some(9));
        assert_eq!(block_count(1000), Some(10));
        assert!(batch_means(&[1.0; 5]).is_none());
        // Identical runs: a zero-width interval at the value.
        let flat = batch_means(&[2.0; 40]).unwrap();
        assert_eq!((flat.mean_ms, flat.half_width_ms), (2.0, 0.0));
        assert_eq!(flat.throughput_ci(1), Some((500.0, 500.0)));
    }

    #[test]
    fn drift_widens_batch_means_beyond_the_iid_interval() {
        // Latency drifting up linearly (a board heating up): 1000 runs from 10 to 20 ms.
        // Treated as independent, the 95 % half-width is 1.96 * s / sqrt(n) ~ 0.18 ms;
        // batch means sees block means one whole ms apart and gives ~2.17 ms.
        let v: Vec<f64> = (0..1000).map(|i| 10.0 + i as f64 * 0.01).collect();
        let bm = batch_means(&v).unwrap();
        let mean = v.iter().sum::<f64>() / 1000.0;
        let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 999.0).sqrt();
        let iid = 1.96 * sd / 1000f64.sqrt();
        assert!(iid < 0.2, "{iid}");
        // Block means are 1 ms apart: s = sqrt(82.5 / 9), half = 2.262 * s / sqrt(10).
        let want = 2.262 * (82.5f64 / 9.0).sqrt() / 10f64.sqrt();
        assert!(
            (bm.half_width_ms - want).abs() < 1e-9,
            "{}",
            bm.half_width_ms
        );
        assert!(bm.half_width_ms > 10.0 * iid);
    }

    #[test]
    fn t_quantiles() {
        assert_eq!(t975(1), 12.706);
        assert_eq!(t975(9), 2.262);
        assert_eq!(t975(30), 2.042);
        assert_eq!(t975(1000), 1.96);
        assert!(t975(0).is_infinite());
    }

    #[test]
    fn median_ci_hand_computed() {
        // n = 16: half = 1.96 * 4 / 2 = 3.92; ranks floor(8 - 3.92) = 4 and
        // ceil(8 + 3.92) = 12 (1-based): values 4 and 12 of 1..=16.
        let v: Vec<f64> = (1..=16).map(f64::from).collect();
        assert_eq!(median_ci(&v), Some((4.0, 12.0)));
        // Relative half-width: (12 - 4) / 2 / median 8 = 0.5.
        assert_eq!(median_rel_ci(&v), 0.5);
        assert_eq!(median_ci(&v[..5]), None);
        let s = Stats::compute(&v, 1).unwrap();
        assert_eq!(s.p50_ci, Some((4.0, 12.0)));
    }
}
