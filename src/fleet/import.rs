//! `edgebench import FILE.jsonl...`: desk results (`edgebench run` output) into the
//! fleet store, with the collector's de-duplication (upserts on `run_id` and
//! `summary_id`), so importing a file twice, or a file whose records also came over
//! MQTT, adds nothing.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::ingest::{self, Row};
use super::store::Store;
use crate::bench::result::now_ms;

/// Rows written per transaction.
const BATCH: usize = 500;
/// Bad lines named on stderr per file, at most.
const SHOW_BAD: usize = 10;

/// Arguments of `edgebench import`.
#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// JSON Lines files written by `edgebench run` (result and summary records).
    #[arg(required = true, value_name = "FILE.jsonl")]
    pub files: Vec<PathBuf>,
    /// Store URL: `sqlite:PATH` or `postgres://user@host:port/db` (default: `[collect] db`).
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,
    /// Config file (for `[collect] db`; default /etc/edgebench/edgebench.toml when present).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// What one file added.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Records stored now.
    pub new: u64,
    /// Records whose key was already in the store.
    pub present: u64,
    /// Lines that are not valid records (named on stderr).
    pub bad: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.new += o.new;
        self.present += o.present;
        self.bad += o.bad;
    }
}

/// `edgebench import`: prints one line per file and a total; returns the total.
pub fn run(args: &ImportArgs) -> Result<Counts> {
    let url = match &args.db {
        Some(u) => u.clone(),
        None => {
            let (cfg, _) = crate::config::load_with_overrides(args.config.as_deref(), &[])?;
            cfg.collect.db_url()
        }
    };
    let mut store = super::store::open(&url)?;
    let mut total = Counts::default();
    for f in &args.files {
        let c = import_file(store.as_mut(), f)?;
        println!(
            "{}: {} new, {} already present, {} bad",
            f.display(),
            c.new,
            c.present,
            c.bad
        );
        total += c;
    }
    if args.files.len() > 1 {
        println!(
            "total: {} new, {} already present, {} bad ({})",
            total.new,
            total.present,
            total.bad,
            store.describe()
        );
    }
    Ok(total)
}

/// Imports one file; bad lines are counted and the first few named on stderr.
pub fn import_file(store: &mut dyn Store, path: &Path) -> Result<Counts> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let source = format!("import:{name}");
    let mut counts = Counts::default();
    let mut rows: Vec<Row> = Vec::with_capacity(BATCH * 2);
    let now = now_ms();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        match ingest::from_line(&line, &source, now) {
            Ok(r) => rows.extend(r),
            Err(why) => {
                counts.bad += 1;
                if counts.bad as usize <= SHOW_BAD {
                    eprintln!(
                        "{}:{}: skipped ({}): {why}",
                        path.display(),
                        i + 1,
                        why.kind()
                    );
                }
            }
        }
        if rows.len() >= BATCH * 2 {
            flush(store, &mut rows, &mut counts, path)?;
        }
    }
    flush(store, &mut rows, &mut counts, path)?;
    if counts.bad as usize > SHOW_BAD {
        eprintln!(
            "{}: {} more bad lines not shown",
            path.display(),
            counts.bad as usize - SHOW_BAD
        );
    }
    Ok(counts)
}

fn flush(store: &mut dyn Store, rows: &mut Vec<Row>, c: &mut Counts, path: &Path) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let done = store.apply(rows).with_context(|| {
        format!(
            "writing records of {} to {}",
            path.display(),
            store.describe()
        )
    })?;
    for (row, new) in rows.iter().zip(done) {
        if row.table == "results" || row.table == "summaries" {
            if new {
                c.new += 1;
            } else {
                c.present += 1;
            }
        }
    }
    rows.clear();
    Ok(())
}
