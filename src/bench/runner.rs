//! The runner: executes a plan configuration by configuration (DESIGN.md section 4).
//!
//! Per configuration: open the session (`init_ms`), one first inference (`first_ms`),
//! untimed warm-up, timed phase under the stop rules with telemetry sampling, then a
//! record. A configuration that fails yields a `failed` record and the sweep goes on.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;

use super::knee::{analyse_knee, in_sweep_baseline, relative_gain, CurvePoint, Excluded};
use super::plan::{Plan, RunConfig};
use super::protocol::{latency_capacity, should_stop, target_rel_ci_now, warmup_done, StopReason};
use super::result::{now_ms, Record, ResultRecord, SummaryRecord, SCHEMA};
use super::search::{KneeSearch, Measured, Step};
use super::stats::{batch_means, CiStat, Stats};
use crate::backend::{self, Backend, BackendError, SessionSpec};
use crate::config::{Config, ProtocolConfig};
use crate::models::{sha256_file, Zoo};
use crate::telemetry::context::{self, RunContext};
use crate::telemetry::{SysRoot, Telemetry, WindowSummary};

/// Progress of a sweep, reported before each configuration and after the last.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// Points run before this one; also the `run_id` number of the point about to run.
    pub done: usize,
    pub total: usize,
    /// Label of the configuration about to run (empty when finished).
    pub current: String,
    pub eta_s: Option<f64>,
    /// Position in the plan of the configuration about to run (None when finished).
    pub config: Option<usize>,
    /// Its batch (a knee search picks it; otherwise the configuration's own).
    pub batch: u32,
}

/// Where records go as soon as they exist (file, stdout, store, MQTT...).
pub trait RecordSink {
    /// Called for every record: results as they finish, then summaries.
    /// An error aborts the sweep (nothing measured is kept unless the sink kept it).
    fn record(&mut self, rec: &Record) -> Result<()>;
    /// Called before each configuration and once at the end.
    fn progress(&mut self, _p: &Progress) {}
}

/// A sink fanning out to several sinks, in order.
pub struct Fanout<'a>(pub Vec<&'a mut dyn RecordSink>);

impl RecordSink for Fanout<'_> {
    fn record(&mut self, rec: &Record) -> Result<()> {
        for s in self.0.iter_mut() {
            s.record(rec)?;
        }
        Ok(())
    }
    fn progress(&mut self, p: &Progress) {
        for s in self.0.iter_mut() {
            s.progress(p);
        }
    }
}

/// What a finished (or cancelled) sweep produced.
#[derive(Debug, Clone, Default)]
pub struct SweepOutcome {
    pub sweep_id: String,
    pub results: Vec<ResultRecord>,
    pub summaries: Vec<SummaryRecord>,
    pub cancelled: bool,
}

/// Loads backends lazily, once each; a load failure is kept and reported per run.
struct Backends<'c> {
    cfg: &'c Config,
    loaded: BTreeMap<String, Result<Box<dyn Backend>, String>>,
}

impl<'c> Backends<'c> {
    fn get(&mut self, name: &str) -> Result<&dyn Backend, String> {
        let cfg = self.cfg;
        self.loaded
            .entry(name.to_string())
            .or_insert_with(|| backend::load(name, cfg).map_err(|e| e.to_string()))
            .as_ref()
            .map(|b| b.as_ref())
            .map_err(|e| e.clone())
    }
}

/// Static facts recorded in every result of this sweep.
struct Context<'a> {
    cfg: &'a Config,
    plan: &'a Plan,
    device_id: String,
    board: String,
    kernel: Option<String>,
    governor: Option<String>,
    /// Read once per sweep from the board's files (never in the timed loop).
    run_context: RunContext,
}

/// Runs the plan. Blocking: call it from its own thread. `cancel` is checked between
/// configurations and inside the timed loop.
pub fn run_sweep(
    cfg: &Config,
    zoo: &Zoo,
    plan: &Plan,
    sink: &mut dyn RecordSink,
    cancel: &AtomicBool,
) -> Result<SweepOutcome> {
    run_sweep_from(cfg, zoo, plan, 0, sink, cancel)
}

/// [`run_sweep`] from configuration `first` on (run ids keep their plan index): the
/// daemon goes on this way after giving up on a configuration that never returned.
/// Summaries cover the configurations run here.
pub fn run_sweep_from(
    cfg: &Config,
    zoo: &Zoo,
    plan: &Plan,
    first: usize,
    sink: &mut dyn RecordSink,
    cancel: &AtomicBool,
) -> Result<SweepOutcome> {
    let telemetry = if cfg.telemetry.enabled {
        Some(Telemetry::open(
            &cfg.telemetry,
            &cfg.device.board,
            &cfg.device.rail_table,
        ))
    } else {
        None
    };
    let run_context = context::read(&SysRoot::new(&cfg.telemetry.sysroot));
    let ctx = Context {
        cfg,
        plan,
        device_id: cfg.device_id(),
        board: telemetry
            .as_ref()
            .map(|t| t.board().to_string())
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| {
                if cfg.device.board.is_empty() {
                    "unknown".into()
                } else {
                    cfg.device.board.clone()
                }
            }),
        kernel: run_context.kernel.clone().or_else(|| {
            nix::sys::utsname::uname()
                .ok()
                .map(|u| u.release().to_string_lossy().into_owned())
        }),
        governor: telemetry
            .as_ref()
            .and_then(|t| t.governor())
            .or_else(|| run_context.governor.clone()),
        run_context,
    };
    let mut backends = Backends {
        cfg,
        loaded: BTreeMap::new(),
    };
    let mut sha_cache: BTreeMap<std::path::PathBuf, Option<String>> = BTreeMap::new();
    let mut out = SweepOutcome {
        sweep_id: plan.sweep_id.clone(),
        ..Default::default()
    };
    let total = plan.max_points();
    // Run ids keep their plan index when the sweep goes on from `first` (a knee
    // search numbers its points, at most `max_points` per configuration).
    let start = match &plan.batch_search {
        Some(bs) => first * KneeSearch::max_points(bs),
        None => first,
    };
    let mut points = Points {
        ctx: &ctx,
        zoo,
        backends: &mut backends,
        sha_cache: &mut sha_cache,
        telemetry: telemetry.as_ref(),
        cancel,
        started: Instant::now(),
        total,
        start,
        index: start,
    };

    for (config, rc) in plan.configs.iter().enumerate().skip(first) {
        if cancel.load(Ordering::Relaxed) {
            out.cancelled = true;
            break;
        }
        match &plan.batch_search {
            None => {
                points.run(config, rc, None, sink, &mut out)?;
            }
            Some(bs) => {
                // The knee search picks the batches of this series, one point at a
                // time, each with the same cool-down and protocol.
                let mut search = KneeSearch::new(bs, plan.protocol.knee_fraction);
                while let Step::Measure(batch) = search.next() {
                    if cancel.load(Ordering::Relaxed) {
                        out.cancelled = true;
                        break;
                    }
                    let point = RunConfig {
                        batch,
                        ..rc.clone()
                    };
                    let rec = points.run(config, &point, Some("auto"), sink, &mut out)?;
                    if out.cancelled {
                        break;
                    }
                    let measured = (rec.status == "ok")
                        .then_some(rec.throughput_ips)
                        .flatten()
                        .map(|t| {
                            Measured::new(
                                t,
                                rec.throughput_ips_ci_low.zip(rec.throughput_ips_ci_high),
                            )
                        });
                    search.record(batch, measured);
                }
                log::info!(
                    "knee search {}: batches {:?}, growth ended: {:?}, knee {:?}",
                    rc.label(),
                    search.batches(),
                    search.growth_end(),
                    search.knee()
                );
            }
        }
        if out.cancelled {
            break;
        }
    }

    out.summaries = summarise(&ctx, &out.results);
    for s in &out.summaries {
        sink.record(&Record::Summary(Box::new(s.clone())))?;
    }
    sink.progress(&Progress {
        done: points.start + out.results.len(),
        // A knee search ends before its upper bound of points.
        total: if plan.batch_search.is_some() {
            points.start + out.results.len()
        } else {
            total
        },
        current: String::new(),
        eta_s: Some(0.0),
        config: None,
        batch: 0,
    });
    Ok(out)
}

/// Runs single points of a sweep: cool-down, measurement, record to the sink.
struct Points<'a, 'c> {
    ctx: &'a Context<'a>,
    zoo: &'a Zoo,
    backends: &'a mut Backends<'c>,
    sha_cache: &'a mut BTreeMap<std::path::PathBuf, Option<String>>,
    telemetry: Option<&'a Telemetry>,
    cancel: &'a AtomicBool,
    started: Instant,
    /// Points expected (an upper bound for a knee search), for progress.
    total: usize,
    /// The first point's number (a sweep that goes on from a later configuration).
    start: usize,
    /// The next point's number (the run id's number).
    index: usize,
}

impl Points<'_, '_> {
    /// Measures one point and hands its record to the sink. `search` labels records of
    /// a batch search (`batch_search`).
    fn run(
        &mut self,
        config: usize,
        rc: &RunConfig,
        search: Option<&str>,
        sink: &mut dyn RecordSink,
        out: &mut SweepOutcome,
    ) -> Result<ResultRecord> {
        let i = self.index;
        self.index += 1;
        let total = self.total.max(self.index);
        let eta_s = (i > self.start).then(|| {
            self.started.elapsed().as_secs_f64() / (i - self.start) as f64 * (total - i) as f64
        });
        sink.progress(&Progress {
            done: i,
            total,
            current: rc.label(),
            eta_s,
            config: Some(config),
            batch: rc.batch,
        });
        let protocol = &self.ctx.plan.protocol;
        let cooldown = match (self.telemetry, i > 0 && protocol.cooldown_max_s > 0.0) {
            (Some(t), true) => {
                Some(t.cool_down(protocol.cooldown_max_temp_c, protocol.cooldown_max_s))
            }
            _ => None,
        };
        let mut rec = base_record(self.ctx, rc, i);
        rec.batch_search = search.map(String::from);
        if let Some(c) = cooldown {
            rec.cooldown_s = Some(round3(c.waited.as_secs_f64()));
            rec.cooldown_reached = Some(c.reached);
        }
        run_one(
            self.ctx,
            self.zoo,
            rc,
            self.backends,
            self.sha_cache,
            self.telemetry,
            self.cancel,
            &mut rec,
        );
        if rec.status == "interrupted" {
            out.cancelled = true;
        }
        rec.ts = now_ms();
        sink.record(&Record::Result(Box::new(rec.clone())))?;
        out.results.push(rec.clone());
        Ok(rec)
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

fn base_record(ctx: &Context, rc: &RunConfig, index: usize) -> ResultRecord {
    ResultRecord {
        record: "result".into(),
        schema: SCHEMA,
        ts: now_ms(),
        device_id: ctx.device_id.clone(),
        board: ctx.board.clone(),
        sweep_id: ctx.plan.sweep_id.clone(),
        run_id: format!("{}-{:04}", ctx.plan.sweep_id, index),
        status: "failed".into(),
        model: rc.model.clone(),
        arch: Some(
            rc.entry
                .as_ref()
                .map(|e| e.arch())
                .unwrap_or_else(|| crate::models::arch_from_name(&rc.model)),
        ),
        task: rc.entry.as_ref().map(|e| e.task.clone()),
        backend: rc.backend.clone(),
        ep: rc.ep.clone(),
        ep_requested: Some(rc.ep.clone()),
        precision: rc.precision.clone(),
        precision_requested: Some(rc.precision.clone()),
        batch: rc.batch,
        threads: rc.threads,
        runtime: match rc.backend.as_str() {
            "ort" => "onnxruntime".into(),
            other => other.into(),
        },
        edgebench_version: crate::VERSION.into(),
        kernel: ctx.kernel.clone(),
        governor: ctx.governor.clone(),
        seed: Some(ctx.plan.protocol.seed),
        context: ctx.run_context.clone(),
        ..Default::default()
    }
}

#[allow(clippy::too_many_arguments)]
fn run_one(
    ctx: &Context,
    zoo: &Zoo,
    rc: &RunConfig,
    backends: &mut Backends,
    sha_cache: &mut BTreeMap<std::path::PathBuf, Option<String>>,
    telemetry: Option<&Telemetry>,
    cancel: &AtomicBool,
    rec: &mut ResultRecord,
) {
    let Some(entry) = &rc.entry else {
        rec.error = Some(format!(
            "model `{}` has no {} variant in the manifest {}",
            rc.model,
            rc.precision,
            zoo.manifest.display()
        ));
        return;
    };
    let path = zoo.path_of(entry);
    if !path.is_file() {
        rec.error = Some(format!(
            "model file {} for `{}` is missing (build it with `make models`, or check [models] dir)",
            path.display(),
            entry.name
        ));
        return;
    }
    rec.model_sha256 = sha_cache
        .entry(path.clone())
        .or_insert_with(|| sha256_file(&path).ok())
        .clone();
    let backend = match backends.get(&rc.backend) {
        Ok(b) => b,
        Err(e) => {
            rec.error = Some(e);
            return;
        }
    };
    rec.runtime = backend.runtime().into();
    rec.runtime_version = Some(backend.runtime_version());
    let trt = &ctx.cfg.tensorrt;
    let precision = match backend::precision::resolve(
        &rc.precision,
        &entry.precision,
        &rc.backend,
        &rc.ep,
        trt.fp16,
        trt.int8,
    ) {
        Ok(p) => p,
        Err(e) => {
            rec.error = Some(format!("model `{}` ({}): {e}", entry.name, entry.file));
            return;
        }
    };
    rec.precision = precision.effective.clone();
    let fixed_batch = match backend::FixedBatch::parse(&ctx.plan.protocol.fixed_batch) {
        Ok(f) => f,
        Err(e) => {
            rec.error = Some(format!("protocol: {e}"));
            return;
        }
    };
    let spec = SessionSpec {
        model_path: path,
        input_name: entry.input_name.clone(),
        input_shape: entry.input_shape.clone(),
        input_dtype: entry.dtype.clone(),
        batch: rc.batch,
        ep: rc.ep.clone(),
        precision: precision.effective,
        trt_fp16: precision.trt_fp16,
        trt_int8: precision.trt_int8,
        threads: rc.threads,
        seed: ctx.plan.protocol.seed,
        fixed_batch,
        mem_root: Some(std::path::PathBuf::from(&ctx.cfg.telemetry.sysroot)),
    };
    match measure(&ctx.plan.protocol, backend, &spec, telemetry, cancel, rec) {
        Ok(()) => {}
        Err(e) => rec.error = Some(e.to_string()),
    }
}

/// Opens the session and runs the protocol, filling `rec`.
fn measure(
    p: &ProtocolConfig,
    backend: &dyn Backend,
    spec: &SessionSpec,
    telemetry: Option<&Telemetry>,
    cancel: &AtomicBool,
    rec: &mut ResultRecord,
) -> Result<(), BackendError> {
    let t0 = Instant::now();
    let mut session = backend.open(spec)?;
    let open_ms = t0.elapsed().as_secs_f64() * 1e3;
    rec.ep = session.ep_used();
    if matches!(rec.ep.as_str(), "cuda" | "tensorrt") {
        // The GPU libraries the provider really mapped, rather than those installed.
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
        rec.context.apply_loaded(&context::loaded_libraries(&maps));
    }
    rec.batch_mode = Some(session.batch_mode().as_str().into());
    rec.batch_per_call = Some(session.batch_per_call());
    rec.input_shape = Some(
        session
            .input_shape()
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("x"),
    );
    for (k, v) in session.extra_fields() {
        rec.extra.insert(k, v);
    }
    let first_ms = match session.first_run_ms() {
        Some(f) => {
            rec.init_ms = Some(round3((open_ms - f).max(0.0)));
            f
        }
        None => {
            rec.init_ms = Some(round3(open_ms));
            let t = Instant::now();
            session.run()?;
            t.elapsed().as_secs_f64() * 1e3
        }
    };
    rec.first_ms = Some(round3(first_ms));

    // Warm-up, untimed.
    let w0 = Instant::now();
    let mut warm = 0u64;
    while !warmup_done(p, warm, w0.elapsed().as_secs_f64()) {
        if cancel.load(Ordering::Relaxed) {
            rec.status = "interrupted".into();
            rec.stop_reason = Some(StopReason::Cancelled.as_str().into());
            return Ok(());
        }
        session.run()?;
        warm += 1;
    }
    let warm_mean_s = if warm > 0 {
        w0.elapsed().as_secs_f64() / warm as f64
    } else {
        first_ms / 1e3
    };
    rec.warmup_iterations = Some(warm);

    // Timed phase. Everything it touches is allocated before it starts.
    let mut lat_ms: Vec<f64> = Vec::with_capacity(latency_capacity(p, warm_mean_s));
    let mut scratch: Vec<f64> = Vec::with_capacity(
        if p.target_rel_ci > 0.0 && p.ci_target_stat == CiStat::Median {
            lat_ms.capacity()
        } else {
            0
        },
    );
    let mut next_ci_check = p.min_s;
    let window = telemetry.map(|t| t.start_window());
    let start = Instant::now();
    let mut run_error = None;
    let reason = loop {
        let t = Instant::now();
        let r = session.run();
        let d = t.elapsed();
        if let Err(e) = r {
            run_error = Some(e);
            break None;
        }
        if lat_ms.len() < lat_ms.capacity() {
            lat_ms.push(d.as_secs_f64() * 1e3);
        } else {
            // Capacity is sized for max_s at warm-up pace; running past it means the
            // runs got much faster than warm-up. Stop rather than reallocate, and say so.
            break Some(StopReason::BufferFull);
        }
        if cancel.load(Ordering::Relaxed) {
            break Some(StopReason::Cancelled);
        }
        let elapsed = start.elapsed().as_secs_f64();
        // The CI of the median needs a sort, that of the mean a pass over the runs:
        // do either at most every 0.5 s.
        let ci = if p.target_rel_ci > 0.0
            && elapsed >= next_ci_check
            && lat_ms.len() >= p.min_runs as usize
        {
            next_ci_check = elapsed + 0.5;
            target_rel_ci_now(p.ci_target_stat, &lat_ms, &mut scratch)
        } else {
            None
        };
        if let Some(r) = should_stop(p, lat_ms.len() as u64, elapsed, ci) {
            break Some(r);
        }
    };
    let duration = start.elapsed();
    let samples = lat_ms.len() as u64 * spec.batch as u64;
    let tele = window.map(|w| w.finish(samples)).unwrap_or_default();
    // Outputs are read once, after the timed region, for every runtime alike.
    if run_error.is_none() {
        match session.read_outputs() {
            Ok(()) => {
                if let Some((h2d, d2h)) = session.copy_ms() {
                    rec.h2d_ms = fin(h2d);
                    rec.d2h_ms = fin(d2h);
                }
            }
            Err(e) => run_error = Some(e),
        }
    }
    drop(session);

    rec.duration_s = Some(round3(duration.as_secs_f64()));
    fill_stats(rec, &lat_ms, spec.batch);
    fill_telemetry(rec, &tele);
    match (run_error, reason) {
        (Some(e), _) => {
            rec.status = "failed".into();
            rec.error = Some(format!(
                "inference failed after {} timed runs: {e}",
                lat_ms.len()
            ));
        }
        (None, Some(StopReason::Cancelled)) => {
            rec.status = "interrupted".into();
            rec.stop_reason = Some(StopReason::Cancelled.as_str().into());
        }
        (None, Some(r)) => {
            rec.status = "ok".into();
            rec.stop_reason = Some(r.as_str().into());
        }
        (None, None) => unreachable!("loop ends with an error or a reason"),
    }
    rec.warnings = warnings(rec, p);
    Ok(())
}

/// A statistic for the record: rounded, or absent when not finite (an infinite CI,
/// a zero-duration throughput), so NaN / inf never reach a record.
fn fin(x: f64) -> Option<f64> {
    x.is_finite().then(|| round6(x))
}

fn fill_stats(rec: &mut ResultRecord, lat_ms: &[f64], batch: u32) {
    let Some(s) = Stats::compute(lat_ms, batch) else {
        return;
    };
    rec.iterations = Some(s.count as u64);
    rec.latency_ms_mean = fin(s.mean);
    rec.latency_ms_std = fin(s.std);
    rec.latency_ms_min = fin(s.min);
    rec.latency_ms_max = fin(s.max);
    rec.latency_ms_p50 = fin(s.p50);
    if let Some((lo, hi)) = s.p50_ci {
        rec.latency_ms_p50_ci_low = fin(lo);
        rec.latency_ms_p50_ci_high = fin(hi);
    }
    rec.latency_ms_p90 = fin(s.p90);
    rec.latency_ms_p95 = fin(s.p95);
    rec.latency_ms_p99 = fin(s.p99);
    rec.latency_ms_p999 = fin(s.p999);
    rec.latency_ms_per_sample_p50 = fin(s.p50 / batch as f64);
    rec.throughput_ips = fin(s.throughput_ips);
    rec.latency_ms_sum = fin(s.sum_ms);
    rec.cv = fin(s.cv);
    rec.outliers = Some(s.outliers as u64);
    rec.median_rel_ci = fin(s.median_rel_ci);
    if let Some(bm) = batch_means(lat_ms) {
        rec.mean_rel_ci = fin(bm.rel());
        rec.ci_blocks = Some(bm.blocks as u32);
        if let Some((lo, hi)) = bm.throughput_ci(batch) {
            rec.throughput_ips_ci_low = fin(lo);
            rec.throughput_ips_ci_high = fin(hi);
        }
    }
}

fn fill_telemetry(rec: &mut ResultRecord, t: &WindowSummary) {
    rec.temp_c_start = t.temp_c_start;
    rec.temp_c_max = t.temp_c_max;
    rec.temp_c_end = t.temp_c_end;
    rec.throttled = t.throttled;
    if !t.throttle_reasons.is_empty() {
        rec.throttle_reasons = Some(t.throttle_reasons.join(","));
    }
    rec.freq_mhz_min = t.freq_mhz_min;
    rec.freq_mhz_cap = t.freq_mhz_cap;
    rec.power_w_mean = t.power_w_mean;
    rec.energy_mj_per_sample = t.energy_mj_per_sample;
    rec.power_scope = t.power_scope.clone();
    rec.power_sample_hz = t.power_sample_hz;
    rec.energy_method = t.energy_method.clone();
}

/// Runs below which p99 is the maximum (or next to it) rather than an estimate.
pub const TAIL_P99_MIN_RUNS: u64 = 100;
/// Runs below which p99.9 is the maximum (flagged `tail_undersampled`).
pub const TAIL_P999_MIN_RUNS: u64 = 1000;

/// Machine-readable warning flags, comma-separated (absent when none).
fn warnings(rec: &ResultRecord, p: &ProtocolConfig) -> Option<String> {
    let mut w = Vec::new();
    let count = rec.iterations.unwrap_or(0);
    if rec.cv.unwrap_or(0.0) > 0.10 || rec.outliers.unwrap_or(0) * 20 > count.max(1) {
        w.push("noisy");
    }
    if rec.throttled == Some(true) {
        w.push("throttled");
    }
    if count < p.min_runs as u64 {
        w.push("few_runs");
    }
    if let (Some(f), Some(m)) = (rec.first_ms, rec.latency_ms_p50) {
        if m > 0.0 && f > 5.0 * m {
            w.push("slow_first_run");
        }
    }
    if count > 0 && count < TAIL_P999_MIN_RUNS {
        w.push("tail_undersampled");
    }
    // An accelerator run some of whose nodes ONNX Runtime placed on the CPU (only
    // possible with [onnxruntime] allow_partial_fallback = true).
    let cpu_nodes = rec.extra.get("ort_nodes_cpu").and_then(|v| v.as_u64());
    if rec.ep != "cpu" && cpu_nodes.is_some_and(|n| n > 0) {
        w.push("cpu_nodes");
    }
    (!w.is_empty()).then(|| w.join(","))
}

/// One human line per warning flag, for the terminal.
pub fn warning_text(flag: &str) -> &'static str {
    match flag {
        "noisy" => "latency is noisy (CV above 10 % or more than 5 % outliers): close other programs, pin threads, or fix the CPU governor",
        "throttled" => "the board throttled during the timed window: the numbers are not steady-state; improve cooling or raise cool-down",
        "few_runs" => "the timed phase hit max_s before min_runs: raise max_s for trustworthy statistics",
        "slow_first_run" => "the first inference was over 5x slower than the median (lazy initialisation); it is excluded from the statistics",
        "cpu_nodes" => "part of this accelerator run ran on the CPU (ort_nodes_cpu of ort_nodes), as [onnxruntime] allow_partial_fallback permits: it is not a pure accelerator number",
        "tail_undersampled" => "p99 needs at least 100 timed runs and p99.9 at least 1000; with fewer they are (close to) the maximum, not a tail estimate: raise min_runs",
        _ => "",
    }
}

/// A record's throughput interval (`throughput_ips_ci_low`/`_high`) when it carries one.
fn throughput_ci(r: &ResultRecord) -> Option<(f64, f64)> {
    r.throughput_ips_ci_low.zip(r.throughput_ips_ci_high)
}

/// The knee curve of one summary group: failed and throttled points marked.
fn curve_points(rs: &[&ResultRecord]) -> Vec<CurvePoint> {
    rs.iter()
        .map(|r| CurvePoint {
            batch: r.batch,
            throughput_ips: r.throughput_ips.unwrap_or(f64::NAN),
            ci: throughput_ci(r),
            excluded: if r.status != "ok" || r.throughput_ips.is_none() {
                Some(Excluded::Failed)
            } else if r.throttled == Some(true) {
                Some(Excluded::Throttled)
            } else {
                None
            },
        })
        .collect()
}

/// Knee and gains per (model, backend, ep, precision, threads, batch mode).
fn summarise(ctx: &Context, results: &[ResultRecord]) -> Vec<SummaryRecord> {
    type Key = (String, String, String, String, u32, Option<String>);
    let mut groups: BTreeMap<Key, Vec<&ResultRecord>> = BTreeMap::new();
    let mut order: Vec<Key> = Vec::new();
    for r in results {
        let k = (
            r.model.clone(),
            r.backend.clone(),
            r.ep_requested.clone().unwrap_or(r.ep.clone()),
            r.precision.clone(),
            r.threads,
            r.batch_mode.clone(),
        );
        if !groups.contains_key(&k) {
            order.push(k.clone());
        }
        groups.entry(k).or_default().push(r);
    }
    let baseline = ctx.cfg.report.baseline.split_once(':');
    let fraction = ctx.plan.protocol.knee_fraction;
    order
        .into_iter()
        .map(|k| {
            let rs = &groups[&k];
            let ok: Vec<&&ResultRecord> = rs.iter().filter(|r| r.status == "ok").collect();
            let mut curve: Vec<(u32, f64)> = ok
                .iter()
                .filter_map(|r| r.throughput_ips.map(|t| (r.batch, t)))
                .collect();
            curve.sort_by_key(|(b, _)| *b);
            let analysis = analyse_knee(&curve_points(rs), fraction);
            let knee = analysis.as_ref().map(|a| a.knee());
            let throttled: Vec<String> = analysis
                .iter()
                .flat_map(|a| &a.excluded)
                .filter(|(_, why)| *why == Excluded::Throttled)
                .map(|(b, _)| b.to_string())
                .collect();
            let failed: Vec<String> = rs
                .iter()
                .filter(|r| r.status != "ok")
                .map(|r| r.batch.to_string())
                .collect();
            let mut s = SummaryRecord {
                record: "summary".into(),
                schema: SCHEMA,
                ts: now_ms(),
                device_id: ctx.device_id.clone(),
                board: ctx.board.clone(),
                sweep_id: ctx.plan.sweep_id.clone(),
                model: k.0.clone(),
                backend: k.1.clone(),
                ep: rs
                    .iter()
                    .find(|r| r.status == "ok")
                    .map(|r| r.ep.clone())
                    .unwrap_or(k.2.clone()),
                precision: k.3.clone(),
                threads: k.4,
                knee_batch: knee.as_ref().map(|k| k.batch),
                knee_throughput_ips: knee.as_ref().map(|k| k.throughput_ips),
                peak_throughput_ips: knee.as_ref().map(|k| k.peak_throughput_ips),
                peak_batch: knee.as_ref().map(|k| k.peak_batch),
                knee_fraction: fraction,
                batch_mode: k.5.clone(),
                arch: rs.first().and_then(|r| r.arch.clone()),
                knee_batch_low: analysis.as_ref().map(|a| a.batch_low),
                knee_batch_high: analysis.as_ref().map(|a| a.batch_high),
                sustained_knee_batch: analysis.as_ref().and_then(|a| a.sustained_batch),
                throttled_batches: (!throttled.is_empty()).then(|| throttled.join(",")),
                curve: curve
                    .iter()
                    .map(|(b, t)| format!("{b}:{t:.3}"))
                    .collect::<Vec<_>>()
                    .join(","),
                failed_batches: (!failed.is_empty()).then(|| failed.join(",")),
                edgebench_version: crate::VERSION.into(),
                summary_id: Some(crate::fleet::schema::summary_id(
                    &ctx.plan.sweep_id,
                    &k.0,
                    &k.1,
                    &k.2,
                    &k.3,
                    k.4,
                )),
                ..Default::default()
            };
            if let Some((bb, be)) = baseline {
                s.baseline = Some(format!("{bb}:{be}"));
                for r in &ok {
                    let base = in_sweep_baseline(results, r, bb, be);
                    if let (Some(b), Some(c)) =
                        (base.and_then(|b| b.latency_ms_p50), r.latency_ms_p50)
                    {
                        if let Some(g) = relative_gain(b, c) {
                            s.gains.insert(format!("gain_b{}", r.batch), round6(g));
                        }
                    }
                }
            }
            s
        })
        .collect()
}

/// A convenience for callers that wait between sweeps: sleep in short steps so
/// `cancel` is honoured.
pub fn sleep_cancellable(d: Duration, cancel: &AtomicBool) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if cancel.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep(
            Duration::from_millis(50).min(end.saturating_duration_since(Instant::now())),
        );
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_flags() {
        let p = ProtocolConfig {
            min_runs: 10,
            ..Default::default()
        };
        let mut r = ResultRecord {
            iterations: Some(100),
            cv: Some(0.01),
            outliers: Some(0),
            ..Default::default()
        };
        assert_eq!(warnings(&r, &p).as_deref(), Some("tail_undersampled"));
        r.iterations = Some(1000);
        assert_eq!(warnings(&r, &p), None);
        r.cv = Some(0.2);
        r.throttled = Some(true);
        r.iterations = Some(5);
        r.first_ms = Some(100.0);
        r.latency_ms_p50 = Some(1.0);
        assert_eq!(
            warnings(&r, &p).unwrap(),
            "noisy,throttled,few_runs,slow_first_run,tail_undersampled"
        );
        for f in [
            "noisy",
            "throttled",
            "few_runs",
            "slow_first_run",
            "tail_undersampled",
            "cpu_nodes",
        ] {
            assert!(!warning_text(f).is_empty());
        }
        // CPU nodes matter only on an accelerator.
        let mut r = ResultRecord {
            iterations: Some(1000),
            ep: "cpu".into(),
            ..Default::default()
        };
        r.extra.insert("ort_nodes_cpu".into(), 9.into());
        assert_eq!(warnings(&r, &p), None);
        r.ep = "cuda".into();
        assert_eq!(warnings(&r, &p).as_deref(), Some("cpu_nodes"));
        r.extra.insert("ort_nodes_cpu".into(), 0.into());
        assert_eq!(warnings(&r, &p), None);
    }

    /// A session that is slow during warm-up (20 ms a run) and then instant: the
    /// latency buffer sized at warm-up pace fills long before min_s.
    struct SpeedsUp {
        runs: u32,
    }

    impl backend::Session for SpeedsUp {
        fn batch_mode(&self) -> backend::BatchMode {
            backend::BatchMode::Native
        }
        fn ep_used(&self) -> String {
            "cpu".into()
        }
        fn input_shape(&self) -> Vec<i64> {
            vec![1]
        }
        fn first_run_ms(&self) -> Option<f64> {
            Some(20.0)
        }
        fn run(&mut self) -> Result<(), BackendError> {
            self.runs += 1;
            if self.runs <= 2 {
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(())
        }
    }

    struct SpeedsUpBackend;

    impl Backend for SpeedsUpBackend {
        fn name(&self) -> &'static str {
            "test"
        }
        fn runtime(&self) -> &'static str {
            "test"
        }
        fn runtime_version(&self) -> String {
            "0".into()
        }
        fn providers(&self) -> Vec<String> {
            vec!["cpu".into()]
        }
        fn open(&self, _: &SessionSpec) -> Result<Box<dyn backend::Session>, BackendError> {
            Ok(Box::new(SpeedsUp { runs: 0 }))
        }
    }

    #[test]
    fn a_full_latency_buffer_is_its_own_stop_reason() {
        let p = ProtocolConfig {
            warmup_runs: 2,
            warmup_s: 0.0,
            min_runs: 10,
            min_s: 5.0,
            max_s: 10.0,
            ..Default::default()
        };
        let mut rec = ResultRecord::default();
        let spec = SessionSpec {
            batch: 1,
            ..Default::default()
        };
        let t = Instant::now();
        measure(
            &p,
            &SpeedsUpBackend,
            &spec,
            None,
            &AtomicBool::new(false),
            &mut rec,
        )
        .unwrap();
        // Capacity: max_s / (20 ms + sleep overshoot on a loaded machine) * 1.5, at
        // most 750 runs and above the min_runs + 16 floor, reached well before min_s.
        assert_eq!(rec.stop_reason.as_deref(), Some("buffer_full"), "{rec:?}");
        let n = rec.iterations.unwrap();
        assert!(n > 26 && n <= 750, "{n} runs");
        assert_eq!(rec.status, "ok");
        assert!(t.elapsed() < Duration::from_secs(5), "stopped before min_s");
    }
}
