//! Markdown: renders on any forge.

use std::fmt::Write;

use super::{gain_cells, knee_cells, latency_cells, preamble, unpaired_cells, Cells, Exporter};
use crate::report::Report;

pub struct MarkdownExporter;

fn escape(s: &str) -> String {
    s.replace('|', "\\|")
}

/// A Markdown table (shared with the HTML exporter's fallback text).
pub(crate) fn md_table(c: &Cells, out: &mut String) {
    let _ = writeln!(out, "| {} |", c.headers.join(" | "));
    let _ = writeln!(
        out,
        "|{}",
        c.numeric
            .iter()
            .map(|n| if *n { " ---: |" } else { " --- |" })
            .collect::<String>()
    );
    for row in &c.rows {
        let cells: Vec<String> = row.iter().map(|s| escape(s)).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
}

impl Exporter for MarkdownExporter {
    fn render(&self, r: &Report) -> Vec<u8> {
        let mut out = String::from("# edgebench report\n\n");
        for l in preamble(r) {
            let _ = writeln!(out, "- {}", escape(&l));
        }
        out.push_str("\n## Latency\n\n");
        md_table(&latency_cells(r), &mut out);
        if !r.gains.is_empty() {
            let _ = writeln!(out, "\n## Gains against {}\n", escape(&r.baseline));
            md_table(&gain_cells(r), &mut out);
        }
        let _ = writeln!(
            out,
            "\n## Knees ({:.0} % of the peak)\n",
            r.knee_fraction * 100.0
        );
        md_table(&knee_cells(r), &mut out);
        if !r.unpaired.is_empty() {
            out.push_str("\n## Unpaired (no gain computed)\n\n");
            md_table(&unpaired_cells(r), &mut out);
        }
        out.into_bytes()
    }
}
