//! The report's pure core: runs of one configuration aggregated, gains paired by
//! architecture, precision and batch with a ratio interval, knees per curve.

use std::collections::HashMap;

use serde::Serialize;

use super::load::{Names, Point, Sym};
use crate::bench::knee::{analyse_knee, CurvePoint, Excluded, KneeAnalysis};
use crate::bench::stats::percentile_nearest_rank;

/// The runs of one configuration (platform, arch, precision, batch mode, batch),
/// aggregated. Failed and throttled runs are counted and left out of the numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    #[serde(skip)]
    pub platform: usize,
    /// The platform's label.
    #[serde(rename = "platform")]
    pub platform_label: String,
    pub arch: String,
    pub precision: String,
    pub batch_mode: String,
    pub batch: u32,
    /// Model names that ran (e.g. `mobilenet_v2_edgetpu`), comma-separated.
    pub models: String,
    /// Runs aggregated (status ok, not throttled).
    pub runs: usize,
    pub failed: usize,
    pub throttled: usize,
    /// Median of the runs' median latencies, and their spread (min, max).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_ms_min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_ms_max: Option<f64>,
    /// 95 % interval of the median: one run's own; for several runs the envelope of
    /// theirs (lowest low, highest high), so board-to-board spread widens it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_ci_low: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_ci_high: Option<f64>,
    /// Median of the runs' p99.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
    /// Median of the runs' throughputs (samples/s) and their spread.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throughput_ips: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throughput_ips_min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throughput_ips_max: Option<f64>,
    /// Envelope of the runs' throughput intervals, when every run has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throughput_ci_low: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throughput_ci_high: Option<f64>,
    /// Hottest reading over the runs, °C.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temp_c_max: Option<f64>,
    /// Median of the runs' mean power, W.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub power_w_mean: Option<f64>,
}

/// Median (nearest rank, as the runner's percentiles) and range of finite values.
fn median_min_max(v: &mut [f64]) -> Option<(f64, f64, f64)> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable_by(f64::total_cmp);
    Some((percentile_nearest_rank(v, 50.0), v[0], v[v.len() - 1]))
}

/// Envelope (min of lows, max of highs) when every pair is finite.
fn envelope(pairs: impl Iterator<Item = (f64, f64)>) -> Option<(f64, f64)> {
    let mut out: Option<(f64, f64)> = None;
    for (lo, hi) in pairs {
        if !(lo.is_finite() && hi.is_finite()) {
            return None;
        }
        out = Some(match out {
            None => (lo, hi),
            Some((a, b)) => (a.min(lo), b.max(hi)),
        });
    }
    out
}

/// Groups points by (platform, arch, precision, batch mode, batch) and aggregates each
/// group. Rows come sorted by platform, arch, precision, batch mode and batch.
pub fn aggregate(points: &[Point], of_point: &[u32], names: &Names, labels: &[String]) -> Vec<Row> {
    type Key = (u32, Sym, Sym, Sym, u32);
    let key = |i: usize| -> Key {
        let p = &points[i];
        (of_point[i], p.arch, p.precision, p.batch_mode, p.batch)
    };
    // Points grouped in one pass; only the groups are sorted, with names ranked
    // alphabetically once so that sorting compares integers.
    let mut groups: HashMap<Key, Vec<u32>> = HashMap::new();
    for i in 0..points.len() {
        groups.entry(key(i)).or_default().push(i as u32);
    }
    let rank = names.ranks();
    let mut groups: Vec<(Key, Vec<u32>)> = groups.into_iter().collect();
    groups.sort_unstable_by_key(|(k, _)| {
        (
            k.0,
            rank[k.1 as usize],
            rank[k.2 as usize],
            rank[k.3 as usize],
            k.4,
        )
    });
    let mut rows = Vec::with_capacity(groups.len());
    let (mut p50, mut p99, mut thr, mut pw) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (k, idx) in groups {
        let group: Vec<&Point> = idx.iter().map(|&i| &points[i as usize]).collect();
        let good: Vec<&&Point> = group
            .iter()
            .filter(|p| p.ok && !p.throttled && p.p50.is_finite())
            .collect();
        let finite = |f: fn(&Point) -> f64, v: &mut Vec<f64>| {
            v.clear();
            v.extend(good.iter().map(|p| f(p)).filter(|x| x.is_finite()));
        };
        finite(|p| p.p50, &mut p50);
        finite(|p| p.p99, &mut p99);
        finite(|p| p.throughput, &mut thr);
        finite(|p| p.power_w_mean, &mut pw);
        let m50 = median_min_max(&mut p50);
        let mthr = median_min_max(&mut thr);
        let ci = envelope(good.iter().map(|p| (p.p50_lo, p.p50_hi)));
        let tci = envelope(good.iter().map(|p| (p.throughput_lo, p.throughput_hi)));
        let mut syms: Vec<Sym> = group.iter().map(|p| p.model).collect();
        syms.sort_unstable();
        syms.dedup();
        let mut models: Vec<&str> = syms.into_iter().map(|s| names.get(s)).collect();
        models.sort_unstable();
        let temp = group
            .iter()
            .map(|p| p.temp_c_max)
            .filter(|x| x.is_finite())
            .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
        rows.push(Row {
            platform: k.0 as usize,
            platform_label: labels[k.0 as usize].clone(),
            arch: names.get(k.1).into(),
            precision: names.get(k.2).into(),
            batch_mode: names.get(k.3).into(),
            batch: k.4,
            models: models.join(","),
            runs: good.len(),
            failed: group.iter().filter(|p| !p.ok).count(),
            throttled: group.iter().filter(|p| p.ok && p.throttled).count(),
            p50_ms: m50.map(|m| m.0),
            p50_ms_min: m50.map(|m| m.1),
            p50_ms_max: m50.map(|m| m.2),
            p50_ci_low: ci.map(|c| c.0),
            p50_ci_high: ci.map(|c| c.1),
            p99_ms: median_min_max(&mut p99).map(|m| m.0),
            throughput_ips: mthr.map(|m| m.0),
            throughput_ips_min: mthr.map(|m| m.1),
            throughput_ips_max: mthr.map(|m| m.2),
            throughput_ci_low: tci.map(|c| c.0),
            throughput_ci_high: tci.map(|c| c.1),
            temp_c_max: temp,
            power_w_mean: median_min_max(&mut pw).map(|m| m.0),
        });
    }
    rows
}

/// The default baseline: the slowest platform, i.e. the one whose median latencies are
/// highest relative to the other platforms on the same arch, precision and batch
/// (mean over those of log(p50 / geometric mean of the platforms' p50)). Platforms that
/// share nothing with another score 0. Ties: the first platform.
pub fn slowest_platform(rows: &[Row], n_platforms: usize) -> usize {
    type Group<'a> = HashMap<(&'a str, &'a str, u32), Vec<(usize, f64)>>;
    let mut groups: Group = HashMap::new();
    for r in rows {
        if let Some(p) = r.p50_ms.filter(|p| *p > 0.0) {
            groups
                .entry((&r.arch, &r.precision, r.batch))
                .or_default()
                .push((r.platform, p.ln()));
        }
    }
    let mut score = vec![(0.0f64, 0usize); n_platforms];
    for g in groups.values() {
        let plats: std::collections::BTreeSet<usize> = g.iter().map(|x| x.0).collect();
        if plats.len() < 2 {
            continue;
        }
        let mean = g.iter().map(|x| x.1).sum::<f64>() / g.len() as f64;
        for &(p, l) in g {
            score[p].0 += l - mean;
            score[p].1 += 1;
        }
    }
    let avg = |i: usize| {
        let (s, n) = score[i];
        if n == 0 {
            0.0
        } else {
            s / n as f64
        }
    };
    (0..n_platforms).fold(0, |best, i| if avg(i) > avg(best) { i } else { best })
}

/// What a gain's interval says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The whole interval is above 1: the candidate is faster.
    Faster,
    /// The whole interval is below 1: the candidate is slower.
    Slower,
    /// The interval contains 1.
    NoMeasurableDifference,
    /// A side has no interval (too few runs, or an old record): the point gain only.
    NoInterval,
}

impl Verdict {
    pub fn text(self) -> &'static str {
        match self {
            Verdict::Faster => "faster",
            Verdict::Slower => "slower",
            Verdict::NoMeasurableDifference => "no measurable difference",
            Verdict::NoInterval => "no interval",
        }
    }
}

/// A gain with its interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GainValue {
    /// `baseline p50 / candidate p50`; above 1 the candidate is faster.
    pub gain: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub low: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub high: Option<f64>,
    pub verdict: Verdict,
}

/// The gain of a candidate median over a baseline median with a conservative interval
/// by interval arithmetic on the two 95 % intervals of the medians:
/// `[baseline low / candidate high, baseline high / candidate low]`. It contains the
/// true ratio whenever both intervals contain their medians (at least 90 % of the time
/// for independent runs; usually more, since the extremes rarely coincide).
pub fn gain(
    base: f64,
    base_ci: Option<(f64, f64)>,
    cand: f64,
    cand_ci: Option<(f64, f64)>,
) -> Option<GainValue> {
    if !(base > 0.0 && cand > 0.0) {
        return None;
    }
    let g = base / cand;
    match (base_ci, cand_ci) {
        (Some((bl, bh)), Some((cl, ch))) if bl > 0.0 && cl > 0.0 => {
            let (low, high) = (bl / ch, bh / cl);
            let verdict = if low > 1.0 {
                Verdict::Faster
            } else if high < 1.0 {
                Verdict::Slower
            } else {
                Verdict::NoMeasurableDifference
            };
            Some(GainValue {
                gain: g,
                low: Some(low),
                high: Some(high),
                verdict,
            })
        }
        _ => Some(GainValue {
            gain: g,
            low: None,
            high: None,
            verdict: Verdict::NoInterval,
        }),
    }
}

/// One paired comparison against the baseline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GainRow {
    /// Index of the candidate's row.
    #[serde(skip)]
    pub row: usize,
    #[serde(skip)]
    pub base_row: usize,
    pub platform: String,
    pub baseline: String,
    pub arch: String,
    pub precision: String,
    pub batch: u32,
    pub models: String,
    pub baseline_models: String,
    #[serde(flatten)]
    pub value: GainValue,
}

/// A row no gain could be computed for, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unpaired {
    pub platform: String,
    pub arch: String,
    pub precision: String,
    pub batch: u32,
    pub models: String,
    pub reason: String,
}

fn ci(lo: Option<f64>, hi: Option<f64>) -> Option<(f64, f64)> {
    lo.zip(hi)
}

/// Pairs every row of another platform with the baseline's row of the same arch,
/// precision and batch (same batch mode preferred) and computes the gains; lists what
/// has no partner.
pub fn pair(rows: &[Row], baseline: usize) -> (Vec<GainRow>, Vec<Unpaired>) {
    let mut base: HashMap<(&str, &str, u32), Vec<usize>> = HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        if r.platform == baseline {
            base.entry((&r.arch, &r.precision, r.batch))
                .or_default()
                .push(i);
        }
    }
    let mut used = vec![false; rows.len()];
    let mut gains = Vec::new();
    let mut unpaired = Vec::new();
    let un = |r: &Row, reason: String| Unpaired {
        platform: r.platform_label.clone(),
        arch: r.arch.clone(),
        precision: r.precision.clone(),
        batch: r.batch,
        models: r.models.clone(),
        reason,
    };
    for (i, r) in rows.iter().enumerate() {
        if r.platform == baseline {
            continue;
        }
        let Some(c) = r.p50_ms else {
            unpaired.push(un(
                r,
                format!(
                    "no usable run ({} failed, {} throttled)",
                    r.failed, r.throttled
                ),
            ));
            continue;
        };
        let cands = base.get(&(r.arch.as_str(), r.precision.as_str(), r.batch));
        let b = cands.and_then(|v| {
            v.iter()
                .copied()
                .filter(|&j| rows[j].p50_ms.is_some())
                .min_by_key(|&j| rows[j].batch_mode != r.batch_mode)
        });
        let Some(j) = b else {
            let why = if cands.is_some() {
                "the baseline's runs of it all failed or throttled"
            } else {
                "the baseline has no result for it"
            };
            unpaired.push(un(r, why.into()));
            continue;
        };
        used[j] = true;
        let br = &rows[j];
        if let Some(value) = gain(
            br.p50_ms.unwrap_or(f64::NAN),
            ci(br.p50_ci_low, br.p50_ci_high),
            c,
            ci(r.p50_ci_low, r.p50_ci_high),
        ) {
            gains.push(GainRow {
                row: i,
                base_row: j,
                platform: r.platform_label.clone(),
                baseline: br.platform_label.clone(),
                arch: r.arch.clone(),
                precision: r.precision.clone(),
                batch: r.batch,
                models: r.models.clone(),
                baseline_models: br.models.clone(),
                value,
            });
        }
    }
    for (i, r) in rows.iter().enumerate() {
        if r.platform == baseline && !used[i] {
            let why = if r.p50_ms.is_none() {
                format!(
                    "baseline with no usable run ({} failed, {} throttled)",
                    r.failed, r.throttled
                )
            } else {
                "baseline: no other platform ran it".to_string()
            };
            unpaired.push(un(r, why));
        }
    }
    (gains, unpaired)
}

/// The knee of one curve (platform, arch, precision, batch mode).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KneeRow {
    pub platform: String,
    #[serde(skip)]
    pub platform_index: usize,
    pub arch: String,
    pub precision: String,
    pub batch_mode: String,
    pub fraction: f64,
    /// None when no point of the curve is usable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub knee: Option<KneeAnalysis>,
}

/// One knee per curve. A batch whose runs all failed or throttled is left out (and
/// listed); throughput intervals are used when every run of a batch has one.
pub fn knees(rows: &[Row], fraction: f64) -> Vec<KneeRow> {
    let mut out: Vec<KneeRow> = Vec::new();
    let mut start = 0;
    // Rows are sorted so each curve is contiguous.
    while start < rows.len() {
        let r0 = &rows[start];
        let same = |r: &Row| {
            r.platform == r0.platform
                && r.arch == r0.arch
                && r.precision == r0.precision
                && r.batch_mode == r0.batch_mode
        };
        let mut end = start + 1;
        while end < rows.len() && same(&rows[end]) {
            end += 1;
        }
        let pts: Vec<CurvePoint> = rows[start..end]
            .iter()
            .map(|r| CurvePoint {
                batch: r.batch,
                throughput_ips: r.throughput_ips.unwrap_or(f64::NAN),
                ci: ci(r.throughput_ci_low, r.throughput_ci_high),
                excluded: match (r.throughput_ips, r.throttled > 0) {
                    (Some(_), _) => None,
                    (None, true) => Some(Excluded::Throttled),
                    (None, false) => Some(Excluded::Failed),
                },
            })
            .collect();
        out.push(KneeRow {
            platform: r0.platform_label.clone(),
            platform_index: r0.platform,
            arch: r0.arch.clone(),
            precision: r0.precision.clone(),
            batch_mode: r0.batch_mode.clone(),
            fraction,
            knee: analyse_knee(&pts, fraction),
        });
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gain_interval_hand_computed() {
        // Baseline 10 ms [9, 11], candidate 4 ms [3.8, 4.4]: gain 2.5,
        // interval [9 / 4.4, 11 / 3.8] = [2.04545.., 2.89473..].
        let g = gain(10.0, Some((9.0, 11.0)), 4.0, Some((3.8, 4.4))).unwrap();
        assert_eq!(g.gain, 2.5);
        assert!((g.low.unwrap() - 9.0 / 4.4).abs() < 1e-12);
        assert!((g.high.unwrap() - 11.0 / 3.8).abs() < 1e-12);
        assert_eq!(g.verdict, Verdict::Faster);
        // 10 [9, 11] against 10.5 [9.5, 11.5]: [0.7826, 1.1579] spans 1.
        let g = gain(10.0, Some((9.0, 11.0)), 10.5, Some((9.5, 11.5))).unwrap();
        assert_eq!(g.verdict, Verdict::NoMeasurableDifference);
        // Slower: 2 [1.9, 2.1] against 4 [3.9, 4.1]: high 2.1 / 3.9 < 1.
        let g = gain(2.0, Some((1.9, 2.1)), 4.0, Some((3.9, 4.1))).unwrap();
        assert_eq!((g.gain, g.verdict), (0.5, Verdict::Slower));
        let g = gain(2.0, None, 4.0, Some((3.9, 4.1))).unwrap();
        assert_eq!(g.verdict, Verdict::NoInterval);
        assert!(gain(0.0, None, 1.0, None).is_none());
    }

    #[test]
    fn median_of_medians_and_envelope() {
        let mut v = vec![3.0, 1.0, 2.0, 10.0];
        // Nearest rank: rank 2 of 4 -> 2.
        assert_eq!(median_min_max(&mut v), Some((2.0, 1.0, 10.0)));
        assert_eq!(
            envelope([(1.0, 2.0), (0.5, 1.5)].into_iter()),
            Some((0.5, 2.0))
        );
        assert_eq!(envelope([(1.0, 2.0), (f64::NAN, 1.5)].into_iter()), None);
    }
}
