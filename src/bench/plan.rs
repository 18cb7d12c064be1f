//! The plan: models x backends x providers x precisions x batch sizes x threads.

use anyhow::{bail, Context, Result};

use crate::config::{self, Config, ProtocolConfig};
use crate::models::{ModelEntry, Zoo};

/// What a user (CLI flags) or an MQTT `sweep-start` asks for: a named sweep, optionally
/// narrowed or replaced axis by axis.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SweepRequest {
    pub sweep: String,
    pub models: Option<Vec<String>>,
    pub batches: Option<Vec<u32>>,
    pub eps: Option<Vec<String>>,
    pub threads: Option<Vec<u32>>,
    pub precisions: Option<Vec<String>>,
    pub backend: Option<String>,
    pub delegate: Option<String>,
    /// `--batch auto`: search the knee (`[batch_search]`) instead of a batch list.
    pub batch_auto: bool,
}

/// One configuration to measure.
#[derive(Debug, Clone, PartialEq)]
pub struct RunConfig {
    /// Base model name (what the user asked for).
    pub model: String,
    pub precision: String,
    pub backend: String,
    /// Execution provider (ort) or delegate (tflite; `cpu` for none).
    pub ep: String,
    pub batch: u32,
    pub threads: u32,
    /// None when the manifest has no variant at this precision (becomes a failed record).
    pub entry: Option<ModelEntry>,
}

impl RunConfig {
    /// Short human label, e.g. `mobilenet_v2 fp32 ort/cpu b8 t1`.
    pub fn label(&self) -> String {
        format!(
            "{} {} {}/{} b{} t{}",
            self.model, self.precision, self.backend, self.ep, self.batch, self.threads
        )
    }
}

/// A validated sweep plan.
#[derive(Debug, Clone)]
pub struct Plan {
    pub sweep: String,
    pub sweep_id: String,
    pub protocol: ProtocolConfig,
    pub configs: Vec<RunConfig>,
    /// Combinations left out because the manifest has no variant at that precision
    /// while other precisions were also asked for (e.g. `int8` of a detector), as
    /// `model precision` labels.
    pub skipped: Vec<String>,
    /// Set for `--batch auto`: each configuration is then a series (batch 1 as a
    /// template) whose batches the knee search picks.
    pub batch_search: Option<super::search::BatchSearchConfig>,
}

impl Plan {
    /// Points the plan measures at most: one per configuration, or for a knee search
    /// up to [`KneeSearch::max_points`](super::search::KneeSearch::max_points) each.
    pub fn max_points(&self) -> usize {
        match &self.batch_search {
            Some(bs) => self.configs.len() * super::search::KneeSearch::max_points(bs),
            None => self.configs.len(),
        }
    }
}

/// Execution providers edgebench knows by name (ONNX Runtime).
pub const KNOWN_EPS: &[&str] = &[
    "cpu", "cuda", "tensorrt", "xnnpack", "openvino", "acl", "armnn", "coreml", "rocm", "qnn",
    "nnapi", "dnnl",
];

/// Builds and validates the plan for a request. Errors name the bad value.
pub fn build(cfg: &Config, zoo: &Zoo, req: &SweepRequest) -> Result<Plan> {
    let sweep = cfg.sweep(&req.sweep)?;
    let models = zoo.expand(req.models.as_ref().unwrap_or(&sweep.models))?;
    let batches = if req.batch_auto {
        if req.batches.is_some() {
            bail!("batch sizes and `auto` given together: give one or the other");
        }
        vec![1]
    } else {
        req.batches.clone().unwrap_or_else(|| sweep.batches.clone())
    };
    config::validate_batches(&batches).context("batch sizes")?;
    let threads = req.threads.clone().unwrap_or_else(|| sweep.threads.clone());
    config::validate_threads(&threads).context("thread counts")?;
    let backend = req.backend.clone().unwrap_or_else(|| sweep.backend.clone());
    let precisions = req
        .precisions
        .clone()
        .unwrap_or_else(|| sweep.precisions.clone());
    if precisions.is_empty() {
        bail!("no precisions given");
    }
    for p in &precisions {
        if !matches!(p.as_str(), "fp32" | "fp16" | "int8") {
            bail!("unknown precision `{p}` (fp32, fp16, int8)");
        }
    }
    let eps: Vec<String> = match backend.as_str() {
        "ort" => {
            let eps = req.eps.clone().unwrap_or_else(|| sweep.eps.clone());
            if eps.is_empty() {
                bail!("no execution providers given");
            }
            for e in &eps {
                if !KNOWN_EPS.contains(&e.as_str()) {
                    bail!(
                        "unknown execution provider `{e}` (known: {})",
                        KNOWN_EPS.join(", ")
                    );
                }
            }
            eps
        }
        "tflite" => {
            let d = req
                .delegate
                .clone()
                .unwrap_or_else(|| sweep.delegate.clone());
            match d.as_str() {
                "" | "cpu" => vec!["cpu".into()],
                "edgetpu" => vec!["edgetpu".into()],
                other => bail!("unknown TFLite delegate `{other}` (edgetpu, or none for CPU)"),
            }
        }
        other => bail!("unknown backend `{other}` (ort, tflite)"),
    };

    let protocol = cfg.protocol.with(sweep);
    protocol.validate(&format!("sweeps.{}", req.sweep))?;

    let mut configs = Vec::new();
    let mut skipped = Vec::new();
    for model in &models {
        // A precision the manifest lacks for this model fails its configurations only
        // when it is the sole precision asked for; in a mixed list it is skipped (the
        // study's INT8 variants exist for classifiers only).
        let has = |p: &String| zoo.resolve(model, p).is_some();
        let any_variant = precisions.iter().any(has);
        for precision in &precisions {
            let entry = zoo.resolve(model, precision).cloned();
            if entry.is_none() && any_variant {
                skipped.push(format!("{model} {precision}"));
                continue;
            }
            for ep in &eps {
                for &t in &threads {
                    for &b in &batches {
                        configs.push(RunConfig {
                            model: model.clone(),
                            precision: precision.clone(),
                            backend: backend.clone(),
                            ep: ep.clone(),
                            batch: b,
                            threads: t,
                            entry: entry.clone(),
                        });
                    }
                }
            }
        }
    }
    if protocol.shuffle {
        shuffle(&mut configs, protocol.seed);
    }
    Ok(Plan {
        sweep: req.sweep.clone(),
        sweep_id: new_sweep_id(),
        protocol,
        configs,
        skipped,
        batch_search: req.batch_auto.then(|| cfg.batch_search.clone()),
    })
}

/// One item of the `--batch` argument: a batch size or `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchArg {
    Auto,
    Size(u32),
}

impl std::str::FromStr for BatchArg {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<BatchArg, String> {
        match s.trim() {
            "auto" => Ok(BatchArg::Auto),
            t => t
                .parse()
                .map(BatchArg::Size)
                .map_err(|_| "not a batch size (or `auto`)".to_string()),
        }
    }
}

/// The `--batch` argument: batch sizes, or `auto` alone. Returns (sizes, auto).
pub fn parse_batch_arg(items: Option<&[BatchArg]>) -> Result<(Option<Vec<u32>>, bool)> {
    let Some(items) = items else {
        return Ok((None, false));
    };
    if items.contains(&BatchArg::Auto) {
        if items.len() > 1 {
            bail!("--batch: `auto` cannot be combined with batch sizes");
        }
        return Ok((None, true));
    }
    let sizes = items
        .iter()
        .map(|i| match i {
            BatchArg::Size(b) => *b,
            BatchArg::Auto => unreachable!("handled above"),
        })
        .collect();
    Ok((Some(sizes), false))
}

/// Seeded Fisher-Yates (the seed is recorded in every result).
fn shuffle<T>(v: &mut [T], seed: u64) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    for i in (1..v.len()).rev() {
        let j = rng.gen_range(0..=i);
        v.swap(i, j);
    }
}

/// A sweep id: UTC time plus a random suffix, sortable, e.g. `20261127T010203Z-3f2a`.
pub fn new_sweep_id() -> String {
    let ms = crate::bench::result::now_ms();
    let secs = ms / 1000;
    let (y, mo, d, h, mi, s) = civil_from_unix(secs);
    // Suffix from the clock's nanoseconds and the pid: unique enough for ids made
    // seconds apart on one board, without an OS random source.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let r = ((nanos >> 10) ^ std::process::id().wrapping_mul(2_654_435_761)) as u16;
    format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z-{r:04x}")
}

/// Unix seconds to UTC calendar fields (Howard Hinnant's days-from-civil, inverted).
pub fn civil_from_unix(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = if m <= 2 { y + 1 } else { y };
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        ((rem % 3600) / 60) as u32,
        (rem % 60) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zoo() -> (tempfile::TempDir, Zoo) {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("manifest.toml"),
            r#"
[sets]
quick = ["a", "b"]
[[model]]
name = "a"
task = "classification"
file = "a.onnx"
input_name = "input"
input_shape = [-1, 3, 8, 8]
[[model]]
name = "b"
task = "segmentation"
file = "b.onnx"
input_name = "input"
input_shape = [-1, 3, 8, 8]
"#,
        )
        .unwrap();
        let z = Zoo::load_from(d.path(), &d.path().join("manifest.toml")).unwrap();
        (d, z)
    }

    #[test]
    fn cross_product_in_order() {
        let (_d, z) = zoo();
        let cfg = Config::default();
        let req = SweepRequest {
            sweep: "quick".into(),
            batches: Some(vec![1, 2]),
            ..Default::default()
        };
        let p = build(&cfg, &z, &req).unwrap();
        let labels: Vec<String> = p
            .configs
            .iter()
            .map(|c| format!("{}{}", c.model, c.batch))
            .collect();
        assert_eq!(labels, vec!["a1", "a2", "b1", "b2"]);
        assert!(p.configs.iter().all(|c| c.entry.is_some() && c.ep == "cpu"));
    }

    #[test]
    fn bad_requests_name_the_problem() {
        let (_d, z) = zoo();
        let cfg = Config::default();
        let mk = |f: &dyn Fn(&mut SweepRequest)| {
            let mut r = SweepRequest {
                sweep: "quick".into(),
                ..Default::default()
            };
            f(&mut r);
            format!("{:#}", build(&cfg, &z, &r).unwrap_err())
        };
        assert!(mk(&|r| r.batches = Some(vec![0])).contains("batch size 0"));
        assert!(mk(&|r| r.batches = Some(vec![1_000_000])).contains("above the limit"));
        assert!(mk(&|r| r.models = Some(vec!["zzz".into()])).contains("unknown model `zzz`"));
        assert!(mk(&|r| r.models = Some(vec!["../x".into()])).contains("not a plain name"));
        assert!(mk(&|r| r.eps = Some(vec!["gpu9".into()]))
            .contains("unknown execution provider `gpu9`"));
        assert!(mk(&|r| r.sweep = "nope".into()).contains("no sweep named `nope`"));
        assert!(mk(&|r| r.precisions = Some(vec!["fp8".into()])).contains("unknown precision"));
    }

    #[test]
    fn missing_precision_variant_is_kept_as_failed_config() {
        let (_d, z) = zoo();
        let req = SweepRequest {
            sweep: "quick".into(),
            precisions: Some(vec!["int8".into()]),
            ..Default::default()
        };
        let p = build(&Config::default(), &z, &req).unwrap();
        assert!(p.configs.iter().all(|c| c.entry.is_none()));
    }

    #[test]
    fn missing_variant_in_a_mixed_list_is_skipped() {
        let (_d, z) = zoo();
        let req = SweepRequest {
            sweep: "quick".into(),
            models: Some(vec!["a".into()]),
            precisions: Some(vec!["fp32".into(), "int8".into()]),
            batches: Some(vec![1]),
            ..Default::default()
        };
        let p = build(&Config::default(), &z, &req).unwrap();
        assert_eq!(p.configs.len(), 1);
        assert_eq!(p.skipped, vec!["a int8".to_string()]);
    }

    #[test]
    fn shuffle_is_seeded() {
        let mut a: Vec<u32> = (0..20).collect();
        let mut b = a.clone();
        shuffle(&mut a, 7);
        shuffle(&mut b, 7);
        assert_eq!(a, b);
        assert_ne!(a, (0..20).collect::<Vec<_>>());
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_unix(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(civil_from_unix(1_767_225_600), (2026, 1, 1, 0, 0, 0));
        assert_eq!(civil_from_unix(951_782_400), (2000, 2, 29, 0, 0, 0));
    }
}
