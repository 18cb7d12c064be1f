//! The table `edgebench run` prints after a sweep: one row per configuration, knee
//! lines and warnings below.

use std::fmt::Write;

use crate::bench::result::{Record, ResultRecord, SummaryRecord};
use crate::bench::runner::warning_text;

fn fmt_opt(v: Option<f64>, prec: usize) -> String {
    v.map(|x| format!("{x:.prec$}"))
        .unwrap_or_else(|| "-".into())
}

/// The results table, with knee lines and warnings below it.
pub fn table(results: &[ResultRecord], summaries: &[SummaryRecord]) -> String {
    let headers = [
        "model",
        "prec",
        "backend/ep",
        "batch",
        "status",
        "p50 ms",
        "p99 ms",
        "ms/sample",
        "samples/s",
        "cv %",
        "runs",
        "stop",
        "temp max",
        "flags",
    ];
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            vec![
                r.model.clone(),
                r.precision.clone(),
                format!("{}/{}", r.backend, r.ep),
                r.batch.to_string(),
                r.status.clone(),
                fmt_opt(r.latency_ms_p50, 3),
                fmt_opt(r.latency_ms_p99, 3),
                fmt_opt(r.latency_ms_per_sample_p50, 3),
                fmt_opt(r.throughput_ips, 1),
                fmt_opt(r.cv.map(|c| c * 100.0), 1),
                r.iterations
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| "-".into()),
                r.stop_reason.clone().unwrap_or_else(|| "-".into()),
                fmt_opt(r.temp_c_max, 1),
                r.warnings.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    // Text columns left-aligned, numbers right-aligned.
    let left = [
        true, true, true, false, true, false, false, false, false, false, false, true, false, true,
    ];
    let mut out = String::new();
    let line = |cells: &[String], out: &mut String| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            let pad = widths[i].saturating_sub(c.chars().count());
            if i > 0 {
                l.push_str("  ");
            }
            if left[i] {
                l.push_str(c);
                l.push_str(&" ".repeat(pad));
            } else {
                l.push_str(&" ".repeat(pad));
                l.push_str(c);
            }
        }
        let _ = writeln!(out, "{}", l.trim_end());
    };
    line(
        &headers.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        &mut out,
    );
    line(
        &widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>(),
        &mut out,
    );
    for row in &rows {
        line(row, &mut out);
    }

    if !summaries.is_empty() {
        out.push('\n');
        for s in summaries {
            let who = format!(
                "{} {} {}/{} threads={}",
                s.model, s.precision, s.backend, s.ep, s.threads
            );
            match (s.knee_batch, s.peak_batch, s.peak_throughput_ips) {
                (Some(k), Some(pb), Some(pt)) => {
                    let _ = writeln!(
                        out,
                        "knee  {who}: batch {k} reaches {:.0} % of the peak {pt:.1} samples/s (peak at batch {pb})",
                        s.knee_fraction * 100.0
                    );
                }
                _ => {
                    let _ = writeln!(out, "knee  {who}: none (no successful configuration)");
                }
            }
            if !s.gains.is_empty() {
                let g: Vec<String> = s
                    .gains
                    .iter()
                    .map(|(k, v)| format!("{}={v:.2}x", k.trim_start_matches("gain_")))
                    .collect();
                let _ = writeln!(
                    out,
                    "gain  {who} vs {}: {}",
                    s.baseline.clone().unwrap_or_default(),
                    g.join(" ")
                );
            }
        }
    }

    let failed: Vec<&ResultRecord> = results.iter().filter(|r| r.status != "ok").collect();
    if !failed.is_empty() {
        out.push('\n');
        for r in failed {
            let _ = writeln!(
                out,
                "{}  {} {} {}/{} batch {}: {}",
                r.status,
                r.model,
                r.precision,
                r.backend,
                r.ep_requested.as_deref().unwrap_or(&r.ep),
                r.batch,
                r.error
                    .as_deref()
                    .unwrap_or("interrupted before the timed phase finished")
            );
        }
    }
    let mut flags: Vec<&str> = results
        .iter()
        .filter_map(|r| r.warnings.as_deref())
        .flat_map(|w| w.split(','))
        .collect();
    flags.sort_unstable();
    flags.dedup();
    if !flags.is_empty() {
        out.push('\n');
        for f in flags {
            let _ = writeln!(out, "warning  {f}: {}", warning_text(f));
        }
    }
    out
}

/// Splits parsed records into results and summaries.
pub fn split(records: Vec<Record>) -> (Vec<ResultRecord>, Vec<SummaryRecord>) {
    let mut r = Vec::new();
    let mut s = Vec::new();
    for rec in records {
        match rec {
            Record::Result(x) => r.push(*x),
            Record::Summary(x) => s.push(*x),
        }
    }
    (r, s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_rows_knee_and_errors() {
        let ok = ResultRecord {
            model: "m".into(),
            precision: "fp32".into(),
            backend: "ort".into(),
            ep: "cpu".into(),
            batch: 4,
            status: "ok".into(),
            latency_ms_p50: Some(1.5),
            throughput_ips: Some(2666.7),
            ..Default::default()
        };
        let bad = ResultRecord {
            status: "failed".into(),
            error: Some("no file".into()),
            batch: 8,
            ..ok.clone()
        };
        let s = SummaryRecord {
            model: "m".into(),
            knee_batch: Some(4),
            peak_batch: Some(4),
            peak_throughput_ips: Some(2666.7),
            knee_fraction: 0.95,
            ..Default::default()
        };
        let t = table(&[ok, bad], &[s]);
        assert!(
            t.contains("p50 ms") && t.contains("1.500") && t.contains("2666.7"),
            "{t}"
        );
        assert!(
            t.contains("knee  m") && t.contains("batch 4 reaches 95 %"),
            "{t}"
        );
        assert!(t.contains("failed  m fp32 ort/cpu batch 8: no file"), "{t}");
    }
}
