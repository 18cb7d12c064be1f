//! `edgebench report` (DESIGN.md section 15): result files from any boards, runtimes
//! and dates read into platforms, aggregated runs, gains against a baseline with
//! intervals, and knees; written as a terminal table, Markdown, CSV, JSON or one
//! self-contained HTML file. Also the sweep table `edgebench run` prints.
//!
//! IO sits here and in [`load`]; [`platform`] and [`compare`] are pure; one exporter
//! per format ([`export`], [`html`]).

pub mod compare;
pub mod export;
pub mod html;
pub mod load;
pub mod platform;
pub mod plot;
mod scan;
mod sweep;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;

pub use sweep::{split, table};

use compare::{GainRow, KneeRow, Row, Unpaired};
use load::{Cond, Loaded};
use platform::{Platform, Selector};

/// Why a report could not be made; each kind has its exit code (README "Comparing
/// boards").
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file could not be opened, read or written (exit 1).
    #[error("{0}")]
    Io(String),
    /// A file's content is not usable: not a record, empty, other schema (exit 4).
    #[error("{0}")]
    BadInput(String),
    /// The selection is empty: a baseline matching nothing or several platforms, or
    /// `--where` leaving no result (exit 5).
    #[error("{0}")]
    Selection(String),
    /// An argument out of range (exit 2, as clap's usage errors).
    #[error("{0}")]
    Usage(String),
}

impl ReportError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            ReportError::Io(_) => 1,
            ReportError::BadInput(_) => 4,
            ReportError::Selection(_) => 5,
            ReportError::Usage(_) => 2,
        }
    }
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned text for the terminal.
    Table,
    /// Markdown tables (render on any forge).
    Md,
    /// One row per aggregated configuration, with its gain.
    Csv,
    /// The whole report as one JSON document.
    Json,
    /// One self-contained HTML file with inline SVG figures.
    Html,
}

/// Arguments of `edgebench report`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// JSON Lines result files (from `edgebench run`, the daemon or MQTT), any boards.
    #[arg(required_unless_present = "db", value_name = "FILES")]
    pub files: Vec<PathBuf>,
    /// Also read the fleet store (`edgebench collect` / `import`): `sqlite:PATH` or
    /// `postgres://user@host/db`.
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,
    /// The platform gains are measured against, e.g. `board=raspberrypi5,ep=cpu`
    /// (keys: board, backend, ep/provider/delegate, threads, runtime). Default: the
    /// slowest platform.
    #[arg(long, value_name = "SELECTOR")]
    pub baseline: Option<Selector>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Write to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Keep only results with KEY=VALUE (repeatable; all must hold). Keys: board,
    /// backend, ep, precision, model, arch, batch, batch_mode, threads, device_id,
    /// runtime_version, status, sweep_id, task.
    #[arg(long = "where", value_name = "KEY=VALUE")]
    pub conds: Vec<Cond>,
    /// Fraction of the peak throughput that defines the knee.
    #[arg(long, default_value_t = 0.95)]
    pub knee_fraction: f64,
}

/// One run's telemetry, for the per-run figures.
#[derive(Debug, Clone, PartialEq)]
pub struct RunTelemetry {
    pub platform: usize,
    pub arch: String,
    pub ts: i64,
    pub batch: u32,
    pub temp_c_max: f64,
    pub power_w_mean: f64,
}

/// Everything a report shows; exporters only format it.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub files: Vec<String>,
    /// Result records read, and kept after `--where`.
    pub results_read: usize,
    pub results_used: usize,
    pub notes: Vec<String>,
    pub knee_fraction: f64,
    pub platforms: Vec<Platform>,
    #[serde(skip)]
    pub baseline_index: usize,
    /// The baseline's label and how it was chosen.
    pub baseline: String,
    pub baseline_reason: String,
    /// How gain intervals are computed.
    pub gain_method: &'static str,
    pub rows: Vec<Row>,
    pub gains: Vec<GainRow>,
    pub knees: Vec<KneeRow>,
    pub unpaired: Vec<Unpaired>,
    #[serde(skip)]
    pub runs: Vec<RunTelemetry>,
}

/// How gain intervals are computed (printed with every report).
pub const GAIN_METHOD: &str = "gain = baseline p50 / platform p50 at the same arch, precision and batch; interval = [baseline low / platform high, baseline high / platform low] from the 95 % intervals of the medians (conservative interval arithmetic); an interval containing 1 is marked \"no measurable difference\"";

/// Most telemetry points kept per platform and arch for the per-run figures.
const RUNS_PER_SERIES: usize = 400;

/// Builds the report from loaded points.
pub fn build(
    loaded: &Loaded,
    files: &[PathBuf],
    baseline: Option<&Selector>,
    knee_fraction: f64,
) -> Result<Report, ReportError> {
    if loaded.points.is_empty() {
        return Err(ReportError::Selection(if loaded.results_read == 0 {
            "no result records in the input".to_string()
        } else {
            format!(
                "--where left none of the {} result records",
                loaded.results_read
            )
        }));
    }
    let plats = platform::platforms(&loaded.points, &loaded.names);
    let labels: Vec<String> = plats.list.iter().map(|p| p.label.clone()).collect();
    let rows = compare::aggregate(&loaded.points, &plats.of_point, &loaded.names, &labels);
    let (baseline_index, baseline_reason) = match baseline {
        Some(sel) => (
            sel.pick(&plats.list)?,
            format!(
                "selected with --baseline {}",
                sel.0
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        ),
        None => (
            compare::slowest_platform(&rows, plats.list.len()),
            "default: the slowest platform, highest median latency relative to the others on the same arch, precision and batch; choose another with --baseline".to_string(),
        ),
    };
    let (gains, unpaired) = compare::pair(&rows, baseline_index);
    let knees = compare::knees(&rows, knee_fraction);
    // Per-run telemetry, thinned evenly to a bounded number per series.
    let mut runs = Vec::new();
    let mut by_series: std::collections::HashMap<(u32, load::Sym), Vec<usize>> = Default::default();
    for (i, p) in loaded.points.iter().enumerate() {
        if p.temp_c_max.is_finite() || p.power_w_mean.is_finite() {
            by_series
                .entry((plats.of_point[i], p.arch))
                .or_default()
                .push(i);
        }
    }
    // Series in a fixed order (platform, then arch symbol), as a sorted map gave.
    let mut by_series: Vec<_> = by_series.into_iter().collect();
    by_series.sort_unstable_by_key(|(k, _)| *k);
    for ((plat, arch), mut idx) in by_series {
        idx.sort_by_key(|&i| loaded.points[i].ts);
        let step = idx.len().div_ceil(RUNS_PER_SERIES).max(1);
        for &i in idx.iter().step_by(step) {
            let p = &loaded.points[i];
            runs.push(RunTelemetry {
                platform: plat as usize,
                arch: loaded.names.get(arch).to_string(),
                ts: p.ts,
                batch: p.batch,
                temp_c_max: p.temp_c_max,
                power_w_mean: p.power_w_mean,
            });
        }
    }
    Ok(Report {
        files: files.iter().map(|f| f.display().to_string()).collect(),
        results_read: loaded.results_read,
        results_used: loaded.points.len(),
        notes: loaded.notes.clone(),
        knee_fraction,
        baseline: plats.list[baseline_index].label.clone(),
        baseline_index,
        baseline_reason,
        gain_method: GAIN_METHOD,
        platforms: plats.list,
        rows,
        gains,
        knees,
        unpaired,
        runs,
    })
}

/// Runs `edgebench report`: errors are printed and mapped to their exit codes.
pub fn run_cli(args: &ReportArgs) -> ExitCode {
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edgebench: error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// The fleet store at `url` and its name for messages (password hidden). A SQLite
/// file that does not exist is an error here, not a new empty store.
fn open_store(url: &str) -> Result<(Box<dyn crate::fleet::store::Store>, String), ReportError> {
    use crate::fleet::store;
    let name = store::redact(url);
    let parsed = store::parse_url(url).map_err(|e| ReportError::Io(format!("{e:#}")))?;
    if let store::Url::Sqlite(path) = &parsed {
        if path != ":memory:" && !std::path::Path::new(path).is_file() {
            return Err(ReportError::Io(format!("{name}: no such store file")));
        }
    }
    let s = store::open(url).map_err(|e| ReportError::Io(format!("{name}: {e:#}")))?;
    Ok((s, name))
}

fn run(args: &ReportArgs) -> Result<(), ReportError> {
    if !(args.knee_fraction > 0.0 && args.knee_fraction <= 1.0) {
        return Err(ReportError::Usage(format!(
            "--knee-fraction {} is not in (0, 1]",
            args.knee_fraction
        )));
    }
    let (mut store, db_name) = match &args.db {
        Some(url) => {
            let (s, name) = open_store(url)?;
            (Some(s), Some(name))
        }
        None => (None, None),
    };
    let loaded = load::load(
        &args.files,
        store
            .as_deref_mut()
            .map(|s| (s, db_name.as_deref().unwrap_or(""))),
        &args.conds,
    )?;
    drop(store);
    for n in &loaded.notes {
        eprintln!("edgebench: note: {n}");
    }
    let mut report = build(
        &loaded,
        &args.files,
        args.baseline.as_ref(),
        args.knee_fraction,
    )?;
    report.files.extend(db_name);
    drop(loaded);
    let bytes = export::exporter(args.format).render(&report);
    match &args.out {
        Some(path) => std::fs::write(path, &bytes)
            .map_err(|e| ReportError::Io(format!("cannot write {}: {e}", path.display()))),
        None => std::io::stdout()
            .lock()
            .write_all(&bytes)
            .map_err(|e| ReportError::Io(format!("writing the report: {e}"))),
    }
}
