//! The terminal table.

use std::fmt::Write;

use super::{gain_cells, knee_parts, latency_cells, preamble, unpaired_cells, Cells, Exporter};
use crate::report::Report;

pub struct TableExporter;

fn aligned(c: &Cells, out: &mut String) {
    let mut widths: Vec<usize> = c.headers.iter().map(|h| h.chars().count()).collect();
    for row in &c.rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>, out: &mut String| {
        let mut l = String::new();
        for (i, cell) in cells.enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            if i > 0 {
                l.push_str("  ");
            }
            if c.numeric[i] {
                l.push_str(&" ".repeat(pad));
                l.push_str(cell);
            } else {
                l.push_str(cell);
                l.push_str(&" ".repeat(pad));
            }
        }
        let _ = writeln!(out, "{}", l.trim_end());
    };
    line(&mut c.headers.iter().copied(), out);
    let dashes: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(&mut dashes.iter().map(String::as_str), out);
    for row in &c.rows {
        line(&mut row.iter().map(String::as_str), out);
    }
}

impl Exporter for TableExporter {
    fn render(&self, r: &Report) -> Vec<u8> {
        let mut out = String::new();
        for l in preamble(r) {
            let _ = writeln!(out, "{l}");
        }
        out.push('\n');
        aligned(&latency_cells(r), &mut out);
        if !r.gains.is_empty() {
            let _ = writeln!(out, "\ngains against {}", r.baseline);
            aligned(&gain_cells(r), &mut out);
        }
        out.push('\n');
        for k in &r.knees {
            let (knee, rng, sus, peak, pb, left) = knee_parts(k);
            let mode = if k.batch_mode.is_empty() {
                String::new()
            } else {
                format!(" {}", k.batch_mode)
            };
            let who = format!("{} {} {}{mode}", k.arch, k.precision, k.platform);
            let _ = match &k.knee {
                Some(_) => writeln!(
                    out,
                    "knee  {who}: batch {knee} (range {rng}, sustained {sus}) reaches {:.0} % of the peak {peak} samples/s (peak at batch {pb}){}",
                    k.fraction * 100.0,
                    if left.is_empty() { String::new() } else { format!("; left out: {left}") }
                ),
                None => writeln!(out, "knee  {who}: none ({left})"),
            };
        }
        if !r.unpaired.is_empty() {
            let _ = writeln!(out, "\nunpaired (no gain computed)");
            aligned(&unpaired_cells(r), &mut out);
        }
        out.into_bytes()
    }
}
