//! One exporter per format behind one trait (the shape of hyperfine's `export`).

mod csv;
mod json;
mod markdown;
mod table;

use super::compare::{KneeRow, Row};
use super::{Format, Report};

/// Turns a report into the bytes of one format.
pub trait Exporter {
    fn render(&self, report: &Report) -> Vec<u8>;
}

/// The exporter of a format.
pub fn exporter(f: Format) -> Box<dyn Exporter> {
    match f {
        Format::Table => Box::new(table::TableExporter),
        Format::Md => Box::new(markdown::MarkdownExporter),
        Format::Csv => Box::new(csv::CsvExporter),
        Format::Json => Box::new(json::JsonExporter),
        Format::Html => Box::new(super::html::HtmlExporter),
    }
}

/// A number with `prec` decimals, `-` when absent.
pub fn num(v: Option<f64>, prec: usize) -> String {
    v.filter(|x| x.is_finite())
        .map(|x| format!("{x:.prec$}"))
        .unwrap_or_else(|| "-".into())
}

/// `[low, high]` with `prec` decimals, `-` when absent.
pub fn range(lo: Option<f64>, hi: Option<f64>, prec: usize) -> String {
    match (lo, hi) {
        (Some(l), Some(h)) if l.is_finite() && h.is_finite() => format!("[{l:.prec$}, {h:.prec$}]"),
        _ => "-".into(),
    }
}

/// A plain table: headers, then rows of cells; `numeric` marks right-aligned columns.
pub struct Cells {
    pub headers: Vec<&'static str>,
    pub numeric: Vec<bool>,
    pub rows: Vec<Vec<String>>,
}

/// The latency table: one row per aggregated configuration.
pub fn latency_cells(r: &Report) -> Cells {
    let mut c = Cells {
        headers: vec![
            "platform",
            "arch",
            "prec",
            "mode",
            "batch",
            "runs",
            "p50 ms",
            "p50 95 % CI",
            "p50 spread",
            "p99 ms",
            "samples/s",
            "left out",
        ],
        numeric: vec![
            false, false, false, false, true, true, true, true, true, true, true, false,
        ],
        rows: Vec::new(),
    };
    for row in &r.rows {
        c.rows.push(vec![
            row.platform_label.clone(),
            row.arch.clone(),
            row.precision.clone(),
            row.batch_mode.clone(),
            row.batch.to_string(),
            row.runs.to_string(),
            num(row.p50_ms, 3),
            range(row.p50_ci_low, row.p50_ci_high, 3),
            spread(row),
            num(row.p99_ms, 3),
            num(row.throughput_ips, 1),
            left_out(row),
        ]);
    }
    c
}

/// The min-max of the run medians when there are several runs.
fn spread(row: &Row) -> String {
    if row.runs > 1 {
        format!("{}-{}", num(row.p50_ms_min, 3), num(row.p50_ms_max, 3))
    } else {
        "-".into()
    }
}

fn left_out(row: &Row) -> String {
    let mut v = Vec::new();
    if row.failed > 0 {
        v.push(format!("{} failed", row.failed));
    }
    if row.throttled > 0 {
        v.push(format!("{} throttled", row.throttled));
    }
    v.join(", ")
}

/// The gains table.
pub fn gain_cells(r: &Report) -> Cells {
    let mut c = Cells {
        headers: vec![
            "platform",
            "arch",
            "prec",
            "batch",
            "models",
            "baseline models",
            "gain",
            "gain interval",
            "verdict",
        ],
        numeric: vec![false, false, false, true, false, false, true, true, false],
        rows: Vec::new(),
    };
    for g in &r.gains {
        c.rows.push(vec![
            g.platform.clone(),
            g.arch.clone(),
            g.precision.clone(),
            g.batch.to_string(),
            g.models.clone(),
            g.baseline_models.clone(),
            format!("{:.2}x", g.value.gain),
            range(g.value.low, g.value.high, 2),
            g.value.verdict.text().into(),
        ]);
    }
    c
}

/// The knee table.
pub fn knee_cells(r: &Report) -> Cells {
    let mut c = Cells {
        headers: vec![
            "platform",
            "arch",
            "prec",
            "mode",
            "knee",
            "knee range",
            "sustained",
            "peak samples/s",
            "peak batch",
            "left out",
        ],
        numeric: vec![
            false, false, false, false, true, true, true, true, true, false,
        ],
        rows: Vec::new(),
    };
    for k in &r.knees {
        let (knee, rng, sus, peak, pb, out) = knee_parts(k);
        c.rows.push(vec![
            k.platform.clone(),
            k.arch.clone(),
            k.precision.clone(),
            k.batch_mode.clone(),
            knee,
            rng,
            sus,
            peak,
            pb,
            out,
        ]);
    }
    c
}

/// Knee, range, sustained knee, peak, peak batch and left-out points as text.
pub fn knee_parts(k: &KneeRow) -> (String, String, String, String, String, String) {
    match &k.knee {
        Some(a) => (
            a.batch.to_string(),
            format!("{}-{}", a.batch_low, a.batch_high),
            a.sustained_batch
                .map(|b| b.to_string())
                .unwrap_or_else(|| "none".into()),
            format!("{:.1}", a.peak_throughput_ips),
            a.peak_batch.to_string(),
            a.excluded
                .iter()
                .map(|(b, why)| format!("{b} {}", why.as_str()))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        None => (
            "none".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "no usable point".into(),
        ),
    }
}

/// The unpaired list.
pub fn unpaired_cells(r: &Report) -> Cells {
    let mut c = Cells {
        headers: vec!["platform", "arch", "prec", "batch", "models", "why"],
        numeric: vec![false, false, false, true, false, false],
        rows: Vec::new(),
    };
    for u in &r.unpaired {
        c.rows.push(vec![
            u.platform.clone(),
            u.arch.clone(),
            u.precision.clone(),
            u.batch.to_string(),
            u.models.clone(),
            u.reason.clone(),
        ]);
    }
    c
}

/// The lines that head every human format.
pub fn preamble(r: &Report) -> Vec<String> {
    let mut v = vec![
        format!(
            "{} result records from {} source(s){}; {} platform(s)",
            r.results_read,
            r.files.len(),
            if r.results_used != r.results_read {
                format!(", {} kept by --where", r.results_used)
            } else {
                String::new()
            },
            r.platforms.len()
        ),
        format!("baseline: {} ({})", r.baseline, r.baseline_reason),
        r.gain_method.to_string(),
    ];
    v.extend(r.notes.iter().map(|n| format!("note: {n}")));
    v
}
