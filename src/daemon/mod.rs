//! The board-side daemon (`edgebench daemon`).
//!
//! Start-up: load and validate the configuration and the model zoo, open the store
//! (recording a sweep the previous run left unfinished as interrupted), then tell
//! systemd `READY=1`, before any broker is reached: a board without network still
//! boots and measures. Then one loop on a single-threaded runtime decides what
//! happens: commands from the link, sweep progress from the sweep thread, the boot
//! sweep and the timetable, telemetry, watchdog pings and signals (SIGTERM/SIGINT
//! stop at a safe point, SIGHUP reloads the configuration).

pub mod hang;
pub mod info;
pub mod scheduler;
pub mod service;
pub mod sweep;

mod commands;
mod discovery;
mod event_loop;
mod jobs;
mod publish;
mod recovery;
mod replies;
mod setup;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::bench::plan::Plan;
use crate::bench::result::now_ms;
use crate::mqtt::link::{FromLink, LinkHandle};
use crate::mqtt::messages::SweepState;
use crate::store::{Limits, Store};
use crate::telemetry::Telemetry;
use recovery::recover;
use replies::Replies;
use scheduler::Scheduler;
use service::Notifier;
use setup::Setup;
use sweep::{SweepEvent, SweepThread};

/// Most configurations one MQTT command may ask for.
const MAX_COMMAND_CONFIGS: usize = 1000;
/// Request ids remembered for duplicate detection.
const RECENT_IDS: usize = 4096;
/// How long a stop waits for the running configuration to reach a safe point.
const SWEEP_STOP_GRACE: Duration = Duration::from_secs(20);
/// How long a stop waits for unacknowledged results before publishing `offline`.
const LINK_STOP_GRACE: Duration = Duration::from_secs(3);

/// `edgebench daemon [--config FILE]`: runs until SIGTERM / SIGINT.
pub fn run(config_path: Option<PathBuf>) -> Result<()> {
    run_with(config_path, Vec::new())
}

/// [`run`] with `--set section.key=value` overrides (kept for SIGHUP reloads).
pub fn run_with(config_path: Option<PathBuf>, sets: Vec<String>) -> Result<()> {
    service::init_logging();
    let notifier = Notifier::from_env();
    let setup = match Setup::load(config_path.as_deref(), &sets) {
        Ok(s) => s,
        Err(e) => {
            notifier.status(&format!("configuration error: {e:#}"));
            return Err(e);
        }
    };
    let limits = Limits::from_config(&setup.cfg.store)?;
    let (store, recovery) = Store::open_with(&setup.store_dir, limits).context("store.dir")?;
    let store = Arc::new(store);
    let recovered = recover(&setup.device_id, &setup.board(), &store, recovery)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let mut d = Daemon::new(setup, config_path, sets, store, notifier, recovered);
        d.run().await
    })
}

/// What waits in the queue: the plan and the command's expiry.
struct Queued {
    plan: Plan,
    expires_at: Option<i64>,
}

/// The running sweep.
struct Active {
    thread: SweepThread,
    sweep_id: String,
    /// Cancelled by a command (as opposed to a shutdown).
    cancelled: bool,
    /// When the cancel came (for `watchdog.cancel_grace_s`).
    cancel_at: Option<Instant>,
    /// The plan, for going on after a configuration that never returned.
    plan: Arc<Plan>,
    request_id: Option<String>,
    /// First configuration this thread runs.
    first: usize,
}

struct Daemon {
    setup: Setup,
    config_path: Option<PathBuf>,
    sets: Vec<String>,
    store: Arc<Store>,
    notifier: Notifier,
    telemetry: Arc<Telemetry>,
    board: String,
    /// Runtimes and providers (from a child `edgebench info`), part of `info`.
    runtimes: serde_json::Map<String, serde_json::Value>,
    link: Option<LinkHandle>,
    from_link: Option<mpsc::Receiver<FromLink>>,
    connected: bool,
    sched: Scheduler<Queued>,
    /// Answered request ids with their replies (persisted).
    replies: Replies,
    active: Option<Active>,
    state: SweepState,
    sweep_tx: mpsc::UnboundedSender<SweepEvent>,
    sweep_rx: mpsc::UnboundedReceiver<SweepEvent>,
    started: Instant,
    started_ms: i64,
    boot_at: Option<Instant>,
    next_timetable: Option<Instant>,
    /// Sweep threads given up on that have not ended.
    hung: Vec<hang::Hung>,
}

impl Daemon {
    /// The retained `info` payload: board, versions, models, sweeps, runtimes.
    fn info_payload(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = info::info(
            &self.setup.cfg,
            &self.setup.zoo,
            &self.setup.device_id,
            &self.board,
        );
        m.extend(self.runtimes.clone());
        m
    }

    fn new(
        setup: Setup,
        config_path: Option<PathBuf>,
        sets: Vec<String>,
        store: Arc<Store>,
        notifier: Notifier,
        recovered: Option<SweepState>,
    ) -> Daemon {
        let (sweep_tx, sweep_rx) = mpsc::unbounded_channel();
        let telemetry = Arc::new(Telemetry::open(
            &setup.cfg.telemetry,
            &setup.cfg.device.board,
            &setup.cfg.device.rail_table,
        ));
        let board = telemetry.board().to_string();
        let depth = setup.cfg.commands.queue_depth as usize;
        let started = Instant::now();
        let boot_at = (!setup.cfg.schedule.on_boot.is_empty())
            .then(|| started + Duration::from_secs_f64(setup.cfg.schedule.boot_delay_s));
        // Before READY=1, once; bounded by the probe's own timeout.
        let runtimes = info::runtimes(config_path.as_deref(), &sets, info::RUNTIMES_TIMEOUT);
        let mut d = Daemon {
            config_path,
            sets,
            store,
            notifier,
            telemetry,
            board,
            runtimes,
            link: None,
            from_link: None,
            connected: false,
            sched: Scheduler::new(depth),
            replies: Replies::open(&setup.store_dir, RECENT_IDS),
            active: None,
            state: recovered.unwrap_or_else(SweepState::idle),
            sweep_tx,
            sweep_rx,
            started,
            started_ms: now_ms(),
            boot_at,
            next_timetable: None,
            hung: Vec::new(),
            setup,
        };
        d.next_timetable = d.timetable_due();
        d
    }

    fn timetable_due(&self) -> Option<Instant> {
        let t = self.setup.timetable?;
        let now = now_ms();
        let due = t.next_after(now, self.started_ms);
        Some(Instant::now() + Duration::from_millis((due - now).max(0) as u64))
    }
}
