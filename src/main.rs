//! edgebench command line: parsing and wiring only.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use edgebench::bench::plan::{self, SweepRequest};
use edgebench::bench::result::Record;
use edgebench::bench::runner::{self, Fanout, Progress, RecordSink};
use edgebench::config::{self, Config};
use edgebench::models::Zoo;
use edgebench::report;

#[derive(Parser)]
#[command(
    name = "edgebench",
    version,
    about = "How fast does a neural network really run on this board?"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
struct ConfigArg {
    /// Config file (default: /etc/edgebench/edgebench.toml when present).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Override one config key, highest layer: `--set tensorrt.fp16=true`,
    /// `--set cuda.device_id=1` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a benchmark sweep: print a table and write JSON Lines results.
    Run(RunArgs),
    /// List the model zoo: files present, sizes, sha256 check.
    Models {
        #[command(flatten)]
        config: ConfigArg,
        /// One JSON object per model on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Validate the configuration and print the merged result.
    CheckConfig {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Print the documented default configuration.
    GenerateConfig,
    /// Runtimes found, their versions and usable providers / delegates.
    Info {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        json: bool,
    },
    /// Run as a service: sweeps on boot, on a timetable or on MQTT commands; results,
    /// progress and telemetry published over MQTT (systemd `Type=notify`).
    Daemon {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Compare result files across boards, runtimes and dates: latency, gains against a
    /// baseline platform, knees; as a table, Markdown, CSV, JSON or HTML.
    Report(edgebench::report::ReportArgs),
    /// Server side: store what the boards publish (results, summaries, telemetry,
    /// devices, sweeps) in SQLite or PostgreSQL; runs until stopped.
    Collect(edgebench::collect::CollectArgs),
    /// Add `edgebench run` results files to the fleet store (de-duplicated on run_id).
    Import(edgebench::fleet::import::ImportArgs),
    /// Show the board, every telemetry probe found and its current readings.
    Probe {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        args: edgebench::telemetry::cli::ProbeArgs,
    },
    /// Write the man pages and shell completions generated from this CLI (packaging).
    #[command(hide = true)]
    GenDocs(edgebench::docs::GenDocsArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Named sweep from the configuration.
    #[arg(long, default_value = "quick")]
    sweep: String,
    /// Models (names from the manifest, or @set), comma-separated.
    #[arg(long, value_delimiter = ',')]
    models: Option<Vec<String>>,
    /// Batch sizes, comma-separated, or `auto`: search the knee ([batch_search]).
    #[arg(long = "batch", alias = "batches", value_delimiter = ',')]
    batch: Option<Vec<plan::BatchArg>>,
    /// Execution providers (ort): cpu, cuda, tensorrt, xnnpack, openvino, acl...
    #[arg(long, value_delimiter = ',')]
    ep: Option<Vec<String>>,
    /// Intra-op thread counts, comma-separated (0: runtime default).
    #[arg(long, value_delimiter = ',')]
    threads: Option<Vec<u32>>,
    /// Precisions: fp32, fp16 (TensorRT), int8.
    #[arg(long, value_delimiter = ',')]
    precision: Option<Vec<String>>,
    /// Backend: ort or tflite.
    #[arg(long)]
    backend: Option<String>,
    /// TFLite delegate: edgetpu (default none: CPU).
    #[arg(long)]
    delegate: Option<String>,
    /// Results file (JSON Lines). Default: results/<sweep id>.jsonl.
    #[arg(long, value_name = "FILE.jsonl")]
    out: Option<PathBuf>,
    /// Write records to stdout as JSON Lines (the table goes to stderr).
    #[arg(long)]
    json: bool,
    /// Exit with status 3 when any configuration failed.
    #[arg(long)]
    strict: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("edgebench: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn load_config(c: &ConfigArg) -> Result<Config> {
    Ok(config::load_with_overrides(c.config.as_deref(), &c.set)?.0)
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.cmd {
        Cmd::Run(args) => cmd_run(args),
        Cmd::Models { config, json } => cmd_models(&load_config(&config)?, json),
        Cmd::CheckConfig { config } => {
            let (cfg, sources) =
                config::load_with_overrides(config.config.as_deref(), &config.set)?;
            let zoo = Zoo::load(&cfg);
            let mut notes = Vec::new();
            match &sources.file {
                Some(f) => notes.push(format!("file {}", f.display())),
                None => notes.push("no config file (built-in defaults)".into()),
            }
            if !sources.env_vars.is_empty() {
                notes.push(format!("environment {}", sources.env_vars.join(", ")));
            }
            if !sources.sets.is_empty() {
                notes.push(format!("--set {}", sources.sets.join(", ")));
            }
            // Sweeps must name models the zoo knows (when the manifest is readable).
            if let Ok(z) = &zoo {
                for (name, s) in &cfg.sweeps {
                    z.expand(&s.models)
                        .with_context(|| format!("sweeps.{name}.models"))?;
                }
            }
            println!(
                "# edgebench {}: configuration OK ({})",
                edgebench::VERSION,
                notes.join("; ")
            );
            if let Err(e) = &zoo {
                println!("# note: model manifest not checked: {e:#}");
            }
            print!(
                "{}",
                toml::to_string_pretty(&cfg).context("serialising the merged configuration")?
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::GenerateConfig => {
            print!("{}", config::generate_default());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Info { config, json } => cmd_info(&load_config(&config)?, json),
        Cmd::Daemon { config } => {
            edgebench::daemon::run_with(config.config, config.set)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Collect(args) => {
            edgebench::collect::run(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Import(args) => {
            edgebench::fleet::import::run(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::GenDocs(args) => {
            edgebench::docs::run(&<Cli as clap::CommandFactory>::command(), &args)
        }
        Cmd::Probe { config, args } => {
            let cfg = load_config(&config)?;
            edgebench::telemetry::cli::probe_with(&args, &cfg.telemetry, &cfg.device)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Report(args) => Ok(report::run_cli(&args)),
    }
}

/// Appends each record to a JSON Lines file, flushed per record.
struct FileSink {
    path: PathBuf,
    file: std::io::BufWriter<std::fs::File>,
}

impl RecordSink for FileSink {
    fn record(&mut self, rec: &Record) -> Result<()> {
        writeln!(self.file, "{}", rec.to_json())
            .with_context(|| format!("writing {}", self.path.display()))?;
        self.file
            .flush()
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

/// Records to stdout.
struct StdoutSink;

impl RecordSink for StdoutSink {
    fn record(&mut self, rec: &Record) -> Result<()> {
        let mut o = std::io::stdout().lock();
        writeln!(o, "{}", rec.to_json())?;
        o.flush()?;
        Ok(())
    }
}

/// A one-line progress display on a terminal's stderr.
struct ProgressBar;

impl RecordSink for ProgressBar {
    fn record(&mut self, _rec: &Record) -> Result<()> {
        Ok(())
    }
    fn progress(&mut self, p: &Progress) {
        let mut e = std::io::stderr().lock();
        if p.current.is_empty() {
            let _ = write!(e, "\r\x1b[2K");
        } else {
            let width = 30;
            let filled = (p.done * width).checked_div(p.total).unwrap_or(0);
            let eta = p
                .eta_s
                .map(|s| format!("  eta {}m{:02}s", (s as u64) / 60, (s as u64) % 60))
                .unwrap_or_default();
            let _ = write!(
                e,
                "\r\x1b[2K[{}{}] {}/{}  {}{eta}",
                "#".repeat(filled),
                " ".repeat(width - filled),
                p.done,
                p.total,
                p.current
            );
        }
        let _ = e.flush();
    }
}

fn cmd_run(a: RunArgs) -> Result<ExitCode> {
    let cfg = load_config(&a.config)?;
    let zoo = Zoo::load(&cfg)?;
    let (batches, batch_auto) = plan::parse_batch_arg(a.batch.as_deref())?;
    let req = SweepRequest {
        sweep: a.sweep.clone(),
        models: a.models.clone(),
        batches,
        batch_auto,
        eps: a.ep.clone(),
        threads: a.threads.clone(),
        precisions: a.precision.clone(),
        backend: a.backend.clone(),
        delegate: a.delegate.clone(),
    };
    let plan = plan::build(&cfg, &zoo, &req)?;
    if !plan.skipped.is_empty() {
        eprintln!(
            "note: no model variant for {}: skipped",
            plan.skipped.join(", ")
        );
    }
    // A missing runtime library fails every configuration: say so once, up front.
    let mut backends: Vec<&str> = plan.configs.iter().map(|c| c.backend.as_str()).collect();
    backends.dedup();
    for b in backends {
        edgebench::backend::load(b, &cfg)?;
    }

    let out_path = match &a.out {
        Some(p) => p.clone(),
        None => PathBuf::from("results").join(format!("{}.jsonl", plan.sweep_id)),
    };
    let mut file_sink = if out_path != Path::new("/dev/null") {
        if let Some(dir) = out_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&out_path)
            .with_context(|| format!("cannot open results file {}", out_path.display()))?;
        Some(FileSink {
            path: out_path.clone(),
            file: std::io::BufWriter::new(f),
        })
    } else {
        None
    };
    let mut stdout_sink = StdoutSink;
    let mut bar = ProgressBar;
    let mut sinks: Vec<&mut dyn RecordSink> = Vec::new();
    if let Some(f) = file_sink.as_mut() {
        sinks.push(f);
    }
    if a.json {
        sinks.push(&mut stdout_sink);
    }
    if std::io::stderr().is_terminal() {
        sinks.push(&mut bar);
    }
    let mut fan = Fanout(sinks);

    install_cancel_handler()?;
    let outcome = runner::run_sweep(&cfg, &zoo, &plan, &mut fan, &CANCEL)?;
    let table = report::table(&outcome.results, &outcome.summaries);
    if a.json {
        eprint!("{table}");
    } else {
        print!("{table}");
    }
    let failed = outcome
        .results
        .iter()
        .filter(|r| r.status == "failed")
        .count();
    let mut note = format!(
        "sweep {} ({}): {} configurations, {} failed",
        outcome.sweep_id,
        plan.sweep,
        outcome.results.len(),
        failed
    );
    if outcome.cancelled {
        note.push_str(", cancelled");
    }
    if file_sink.is_some() {
        note.push_str(&format!("; results in {}", out_path.display()));
    }
    eprintln!("{note}");
    Ok(if outcome.cancelled {
        ExitCode::from(130)
    } else if a.strict && failed > 0 {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

/// Set by SIGINT / SIGTERM: the sweep stops at a safe point, keeping what was measured.
static CANCEL: AtomicBool = AtomicBool::new(false);

/// Installs the SIGINT/SIGTERM handler; a second signal ends the process at once.
fn install_cancel_handler() -> Result<()> {
    use nix::sys::signal::{self, SigHandler, Signal};
    extern "C" fn on_signal(sig: libc::c_int) {
        CANCEL.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Ok(s) = Signal::try_from(sig) {
            // SAFETY: resetting a disposition is async-signal-safe.
            let _ = unsafe { signal::signal(s, SigHandler::SigDfl) };
        }
    }
    for s in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic and resets the disposition.
        unsafe { signal::signal(s, SigHandler::Handler(on_signal)) }
            .context("installing signal handler")?;
    }
    Ok(())
}

fn cmd_models(cfg: &Config, json: bool) -> Result<ExitCode> {
    let zoo = Zoo::load(cfg)?;
    let st = zoo.status();
    if json {
        for s in &st {
            println!("{}", serde_json::to_string(s)?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "model directory: {}\nmanifest: {}\n",
        zoo.dir.display(),
        zoo.manifest.display()
    );
    let w = st.iter().map(|s| s.name.len()).max().unwrap_or(5).max(5);
    println!(
        "{:w$}  {:12}  {:5}  {:>10}  {:8}  sets",
        "model", "task", "prec", "size", "sha256"
    );
    for s in &st {
        let size = s.size_bytes.map(human_size).unwrap_or_else(|| "-".into());
        println!(
            "{:w$}  {:12}  {:5}  {:>10}  {:8}  {}",
            s.name, s.task, s.precision, size, s.sha256, s.sets
        );
    }
    let missing = st.iter().filter(|s| !s.present).count();
    if missing > 0 {
        println!(
            "\n{missing} of {} model files missing: build them with `make models`",
            st.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn human_size(b: u64) -> String {
    if b >= 1 << 20 {
        format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
    } else {
        format!("{:.1} KiB", b as f64 / 1024.0)
    }
}

fn cmd_info(cfg: &Config, json: bool) -> Result<ExitCode> {
    let mut info = serde_json::Map::new();
    info.insert("edgebench_version".into(), edgebench::VERSION.into());
    info.insert("device_id".into(), cfg.device_id().into());
    let tele = edgebench::telemetry::Telemetry::open(
        &cfg.telemetry,
        &cfg.device.board,
        &cfg.device.rail_table,
    );
    info.insert("board".into(), tele.board().into());
    let b = tele.board_info();
    if let Some(m) = &b.model {
        info.insert("board_model".into(), m.clone().into());
    }
    if let Some(l) = &b.l4t {
        info.insert("l4t".into(), l.clone().into());
    }
    info.insert("probes".into(), tele.probes_found().join(",").into());
    info.extend(edgebench::telemetry::context::read(tele.root()).to_map());
    info.extend(edgebench::backend::ort::probe_info(cfg));
    info.extend(edgebench::backend::tflite::probe_info(cfg));
    if json {
        println!("{}", serde_json::Value::Object(info));
    } else {
        for (k, v) in &info {
            match v {
                serde_json::Value::String(s) => println!("{k:20} {s}"),
                other => println!("{k:20} {other}"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
