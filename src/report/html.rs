//! One self-contained HTML file: styles inline, figures as inline SVG, no scripts and
//! nothing fetched from anywhere, so it opens the same offline, in CI and on a forge.

use std::collections::BTreeSet;
use std::fmt::Write;

use super::export::{
    gain_cells, knee_cells, latency_cells, preamble, unpaired_cells, Cells, Exporter,
};
use super::plot::{self, Bar, Line};
use super::Report;
use plotters::chart::SeriesLabelPosition;

pub struct HtmlExporter;

/// Text escaped for HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222;max-width:1200px}\
table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:13px}\
th,td{border:1px solid #ccc;padding:2px 6px}td.n{text-align:right}th{background:#f0f0f0}\
figure{display:inline-block;margin:0.5em 1em 0.5em 0;vertical-align:top}\
figcaption{font-size:13px;color:#555;max-width:760px}\
.key span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}\
.note{color:#555;font-size:13px}";

fn table(c: &Cells, keep: impl Fn(&[String]) -> bool, out: &mut String) {
    let rows: Vec<&Vec<String>> = c.rows.iter().filter(|r| keep(r)).collect();
    if rows.is_empty() {
        return;
    }
    out.push_str("<table><tr>");
    for h in &c.headers {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr>\n");
    for r in rows {
        out.push_str("<tr>");
        for (i, cell) in r.iter().enumerate() {
            let class = if c.numeric[i] { " class=\"n\"" } else { "" };
            let _ = write!(out, "<td{class}>{}</td>", esc(cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
}

fn figure(out: &mut String, kind: &str, arch: &str, svg: Result<String, String>, caption: &str) {
    match svg {
        Ok(svg) => {
            let _ = writeln!(
                out,
                "<figure class=\"fig\" data-kind=\"{kind}\" data-arch=\"{}\">{svg}<figcaption>{}</figcaption></figure>",
                esc(arch),
                esc(caption)
            );
        }
        Err(e) => {
            let _ = writeln!(
                out,
                "<p class=\"note\">figure {kind} for {} failed: {}</p>",
                esc(arch),
                esc(&e)
            );
        }
    }
}

fn key(out: &mut String, r: &Report, platforms: &BTreeSet<usize>) {
    out.push_str("<p class=\"key\">");
    for &p in platforms {
        let c = plot::color(p);
        let _ = write!(
            out,
            "<span style=\"background:rgb({},{},{})\"></span>{}",
            c.0,
            c.1,
            c.2,
            esc(&r.platforms[p].label)
        );
    }
    out.push_str("</p>\n");
}

/// The figures and tables of one architecture.
fn arch_section(r: &Report, arch: &str, out: &mut String) {
    let _ = writeln!(out, "<section id=\"arch-{0}\"><h2>{0}</h2>", esc(arch));
    let mut thr = Vec::new();
    let mut lat = Vec::new();
    for k in r.knees.iter().filter(|k| k.arch == arch) {
        let rows: Vec<_> = r
            .rows
            .iter()
            .filter(|x| {
                x.platform == k.platform_index
                    && x.arch == k.arch
                    && x.precision == k.precision
                    && x.batch_mode == k.batch_mode
            })
            .collect();
        let label = format!("{} {} {}", k.platform, k.precision, k.batch_mode);
        let knee = k.knee.as_ref();
        thr.push(Line {
            label: label.clone(),
            color: k.platform_index,
            points: rows
                .iter()
                .filter_map(|x| x.throughput_ips.map(|t| (x.batch as f64, t)))
                .collect(),
            marker: knee.map(|a| (a.batch as f64, a.throughput_ips)),
            marker_label: knee
                .map(|a| format!("  knee {} ({}-{})", a.batch, a.batch_low, a.batch_high))
                .unwrap_or_default(),
            ..Default::default()
        });
        lat.push(Line {
            label: format!("{label} p50"),
            color: k.platform_index,
            points: rows
                .iter()
                .filter_map(|x| x.p50_ms.map(|t| (x.batch as f64, t)))
                .collect(),
            ..Default::default()
        });
        lat.push(Line {
            label: format!("{label} p99"),
            color: k.platform_index,
            points: rows
                .iter()
                .filter_map(|x| x.p99_ms.map(|t| (x.batch as f64, t)))
                .collect(),
            dashed: true,
            ..Default::default()
        });
    }
    figure(
        out,
        "throughput",
        arch,
        plot::batch_chart(
            &format!("{arch}: throughput"),
            "samples/s",
            &thr,
            SeriesLabelPosition::LowerRight,
        ),
        &format!(
            "Throughput against batch per platform; the triangle marks the knee (smallest batch reaching {:.0} % of the peak), its range in brackets. Failed and throttled points are left out.",
            r.knee_fraction * 100.0
        ),
    );
    figure(
        out,
        "latency",
        arch,
        plot::batch_chart(
            &format!("{arch}: latency per batch call"),
            "ms",
            &lat,
            SeriesLabelPosition::UpperLeft,
        ),
        "Latency of one batch call against batch: p50 solid, p99 dashed.",
    );
    let gains: Vec<_> = r.gains.iter().filter(|g| g.arch == arch).collect();
    if !gains.is_empty() {
        let bars: Vec<Bar> = gains
            .iter()
            .map(|g| Bar {
                label: format!("{} b{}", g.precision, g.batch),
                color: r.rows[g.row].platform,
                value: g.value.gain,
                interval: g.value.low.zip(g.value.high),
            })
            .collect();
        figure(
            out,
            "gains",
            arch,
            plot::gain_bars(&format!("{arch}: gain against {}", r.baseline), &bars),
            "Gain = baseline p50 / platform p50 at the same precision and batch; whiskers: the conservative interval; dashed line: no difference.",
        );
        let plats: BTreeSet<usize> = gains.iter().map(|g| r.rows[g.row].platform).collect();
        key(out, r, &plats);
    }
    let runs: Vec<_> = r.runs.iter().filter(|x| x.arch == arch).collect();
    for (kind, title, unit, get) in [
        (
            "temperature",
            "hottest temperature per run",
            "°C",
            (|x: &super::RunTelemetry| x.temp_c_max) as fn(&super::RunTelemetry) -> f64,
        ),
        (
            "power",
            "mean power per run",
            "W",
            |x: &super::RunTelemetry| x.power_w_mean,
        ),
    ] {
        let plats: BTreeSet<usize> = runs
            .iter()
            .filter(|x| get(x).is_finite())
            .map(|x| x.platform)
            .collect();
        if plats.is_empty() {
            continue;
        }
        let lines: Vec<Line> = plats
            .iter()
            .map(|&p| Line {
                label: r.platforms[p].label.clone(),
                color: p,
                points: runs
                    .iter()
                    .filter(|x| x.platform == p && get(x).is_finite())
                    .enumerate()
                    .map(|(i, x)| (i as f64 + 1.0, get(x)))
                    .collect(),
                ..Default::default()
            })
            .collect();
        figure(
            out,
            kind,
            arch,
            plot::run_chart(&format!("{arch}: {title}"), unit, &lines),
            &format!("{title} ({unit}), runs of every batch in time order, as recorded."),
        );
    }
    let is_arch = |row: &[String]| row[1] == arch;
    out.push_str("<h3>Latency</h3>\n");
    table(&latency_cells(r), is_arch, out);
    if !gains.is_empty() {
        out.push_str("<h3>Gains</h3>\n");
        table(&gain_cells(r), is_arch, out);
    }
    out.push_str("<h3>Knees</h3>\n");
    table(&knee_cells(r), is_arch, out);
    out.push_str("</section>\n");
}

impl Exporter for HtmlExporter {
    fn render(&self, r: &Report) -> Vec<u8> {
        let mut out = String::with_capacity(1 << 20);
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>edgebench report</title><style>{STYLE}</style></head><body>\n<h1>edgebench report</h1>\n<ul>"
        );
        for l in preamble(r) {
            let _ = write!(out, "<li>{}</li>", esc(&l));
        }
        out.push_str("</ul>\n<h2>Platforms</h2>\n<table><tr><th>platform</th><th>results</th><th>devices</th></tr>\n");
        for (i, p) in r.platforms.iter().enumerate() {
            let c = plot::color(i);
            let _ = writeln!(
                out,
                "<tr><td><span style=\"display:inline-block;width:10px;height:10px;background:rgb({},{},{})\"></span> {}{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                c.0,
                c.1,
                c.2,
                esc(&p.label),
                if i == r.baseline_index { " (baseline)" } else { "" },
                p.results,
                p.devices
            );
        }
        out.push_str("</table>\n");
        let archs: BTreeSet<&str> = r.rows.iter().map(|x| x.arch.as_str()).collect();
        for a in archs {
            arch_section(r, a, &mut out);
        }
        if !r.unpaired.is_empty() {
            out.push_str("<h2>Unpaired (no gain computed)</h2>\n");
            table(&unpaired_cells(r), |_| true, &mut out);
        }
        out.push_str("</body></html>\n");
        out.into_bytes()
    }
}
