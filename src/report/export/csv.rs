//! CSV: one row per aggregated configuration, with its gain against the baseline.

use std::collections::HashMap;
use std::fmt::Write;

use super::Exporter;
use crate::report::Report;

pub struct CsvExporter;

/// A CSV field, quoted when it holds a comma, quote or newline (RFC 4180).
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn opt(v: Option<f64>) -> String {
    v.filter(|x| x.is_finite())
        .map(|x| x.to_string())
        .unwrap_or_default()
}

impl Exporter for CsvExporter {
    fn render(&self, r: &Report) -> Vec<u8> {
        let mut out = String::from(
            "platform,board,backend,ep,threads,runtime_version,arch,precision,batch_mode,batch,models,runs,failed,throttled,\
p50_ms,p50_ms_min,p50_ms_max,p50_ci_low,p50_ci_high,p99_ms,throughput_ips,throughput_ips_min,throughput_ips_max,\
temp_c_max,power_w_mean,baseline,gain,gain_low,gain_high,verdict\n",
        );
        let gain_of: HashMap<usize, usize> = r
            .gains
            .iter()
            .enumerate()
            .map(|(i, g)| (g.row, i))
            .collect();
        for (i, row) in r.rows.iter().enumerate() {
            let p = &r.platforms[row.platform];
            let g = gain_of.get(&i).map(|&j| &r.gains[j]);
            let cells = [
                field(&row.platform_label),
                field(&p.board),
                field(&p.backend),
                field(&p.ep),
                p.threads.map(|t| t.to_string()).unwrap_or_default(),
                field(p.runtime_version.as_deref().unwrap_or("")),
                field(&row.arch),
                field(&row.precision),
                field(&row.batch_mode),
                row.batch.to_string(),
                field(&row.models),
                row.runs.to_string(),
                row.failed.to_string(),
                row.throttled.to_string(),
                opt(row.p50_ms),
                opt(row.p50_ms_min),
                opt(row.p50_ms_max),
                opt(row.p50_ci_low),
                opt(row.p50_ci_high),
                opt(row.p99_ms),
                opt(row.throughput_ips),
                opt(row.throughput_ips_min),
                opt(row.throughput_ips_max),
                opt(row.temp_c_max),
                opt(row.power_w_mean),
                g.map(|g| field(&g.baseline)).unwrap_or_default(),
                opt(g.map(|g| g.value.gain)),
                opt(g.and_then(|g| g.value.low)),
                opt(g.and_then(|g| g.value.high)),
                g.map(|g| g.value.verdict.text().to_string())
                    .unwrap_or_default(),
            ];
            let _ = writeln!(out, "{}", cells.join(","));
        }
        out.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fields_are_quoted_only_when_needed() {
        assert_eq!(super::field("a"), "a");
        assert_eq!(super::field("a,b"), "\"a,b\"");
        assert_eq!(super::field("say \"x\""), "\"say \"\"x\"\"\"");
    }
}
