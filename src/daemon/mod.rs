//! The board-side daemon (`edgebench daemon`).
//!
//! Start-up: load and validate the configuration and the model zoo, open the store
//! (recording a sweep the previous run left unfinished as interrupted), then tell
//! systemd `READY=1`, before any broker is reached: a board without network still
//! boots and measures. Then one loop on a single-threaded runtime decides what
//! happens: commands from the link, sweep progress from the sweep thread, the boot
//! sweep and the timetable, telemetry, watchdog pings and signals (SIGTERM/SIGINT
//! stop at a safe point, SIGHUP reloads the configuration).

pub mod info;
pub mod scheduler;
pub mod service;
pub mod sweep;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use rumqttc::v5::mqttbytes::QoS;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::bench::plan::{self, Plan, SweepRequest};
use crate::bench::result::{now_ms, Record, ResultRecord, SCHEMA};
use crate::config::{self, Config};
use crate::models::Zoo;
use crate::mqtt::link::{self, FromLink, LinkHandle, LinkSettings, Outbound, ToLink};
use crate::mqtt::messages::{self, Code, Command, Limits, Reply, SweepArgs, SweepState};
use crate::mqtt::topics::Topics;
use crate::store::{Recovery, Store};
use crate::telemetry::Telemetry;
use scheduler::{Admission, Job, Origin, RecentIds, Scheduler, Timetable};
use service::Notifier;
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
    let (store, recovery) =
        Store::open(&setup.store_dir, setup.cfg.store.retention_mb << 20).context("store.dir")?;
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

/// A validated configuration with everything derived from it.
struct Setup {
    cfg: Arc<Config>,
    zoo: Arc<Zoo>,
    device_id: String,
    topics: Topics,
    /// None: MQTT off (`mqtt.host` empty); results are still stored.
    link: Option<LinkSettings>,
    timetable: Option<Timetable>,
    limits: Limits,
    store_dir: PathBuf,
}

impl Setup {
    /// Everything that can be checked before `READY=1`: config, device id, model zoo,
    /// the scheduled sweeps' plans, the timetable, broker credentials and TLS files.
    fn load(path: Option<&Path>, sets: &[String]) -> Result<Setup> {
        let (cfg, sources) = config::load_with_overrides(path, sets)?;
        let device_id = cfg.device_id();
        config::validate_device_id(&device_id).context("device.id")?;
        let topics = Topics::new(&cfg.mqtt.topic_prefix, &device_id).context("device.id")?;
        let zoo = Zoo::load(&cfg).context("models")?;
        for (name, s) in &cfg.sweeps {
            if let Err(e) = zoo.expand(&s.models) {
                log::warn!("sweeps.{name}.models: {e:#}");
            }
        }
        let timetable = Timetable::parse(&cfg.schedule.every).context("schedule.every")?;
        if timetable.is_some() && cfg.schedule.sweep.is_empty() && cfg.schedule.on_boot.is_empty() {
            bail!("schedule.every is set but neither schedule.sweep nor schedule.on_boot names a sweep to run");
        }
        for (key, name) in [
            ("schedule.on_boot", &cfg.schedule.on_boot),
            ("schedule.sweep", &cfg.schedule.sweep),
        ] {
            if !name.is_empty() {
                let plan =
                    plan::build(&cfg, &zoo, &request(name)).with_context(|| key.to_string())?;
                for c in &plan.configs {
                    match &c.entry {
                        Some(e) if !zoo.path_of(e).is_file() => log::warn!(
                            "{key}: model file {} is missing (its configurations will fail)",
                            zoo.path_of(e).display()
                        ),
                        _ => {}
                    }
                }
            }
        }
        if !(cfg.schedule.boot_delay_s.is_finite() && cfg.schedule.boot_delay_s >= 0.0) {
            bail!("schedule.boot_delay_s must be a number >= 0");
        }
        let link = if cfg.mqtt.host.is_empty() {
            None
        } else {
            Some(LinkSettings::from_config(&cfg.mqtt, &device_id, &topics)?)
        };
        if cfg.commands.max_payload_bytes as u64 >= link::MAX_INCOMING_PACKET as u64 {
            bail!(
                "commands.max_payload_bytes must be below {} bytes",
                link::MAX_INCOMING_PACKET
            );
        }
        if cfg.commands.max_batch == 0 || cfg.commands.max_batch > config::MAX_BATCH {
            bail!(
                "commands.max_batch must be in 1..={}, got {}",
                config::MAX_BATCH,
                cfg.commands.max_batch
            );
        }
        let limits = Limits {
            max_payload_bytes: cfg.commands.max_payload_bytes,
            max_batches: cfg.commands.max_batches,
            max_batch: cfg.commands.max_batch,
        };
        let store_dir = cfg.store_dir();
        log::info!(
            "configuration: {}; device {device_id}; models from {}; store {}; mqtt {}",
            match &sources.file {
                Some(f) => f.display().to_string(),
                None => "built-in defaults".into(),
            },
            zoo.manifest.display(),
            store_dir.display(),
            link.as_ref()
                .map(|l| l.address.clone())
                .unwrap_or_else(|| "off".into()),
        );
        Ok(Setup {
            cfg: Arc::new(cfg),
            zoo: Arc::new(zoo),
            device_id,
            topics,
            link,
            timetable,
            limits,
            store_dir,
        })
    }

    fn board(&self) -> String {
        if self.cfg.device.board.is_empty() {
            Telemetry::open(&self.cfg.telemetry, "", &self.cfg.device.rail_table)
                .board()
                .to_string()
        } else {
            self.cfg.device.board.clone()
        }
    }
}

fn request(sweep: &str) -> SweepRequest {
    SweepRequest {
        sweep: sweep.to_string(),
        ..Default::default()
    }
}

/// A sweep the previous run left unfinished (power loss, crash, `kill -9`): the
/// configuration that was running gets an `interrupted` record, so consumers see
/// why the sweep has no more results. Returns the state to publish.
fn recover(device_id: &str, board: &str, store: &Store, r: Recovery) -> Result<Option<SweepState>> {
    if r.truncated_bytes > 0 {
        log::warn!(
            "store: the previous run left a torn record ({} bytes), removed",
            r.truncated_bytes
        );
    }
    if let Some(e) = &r.journal_error {
        log::warn!("store: unreadable sweep journal: {e}");
    }
    let Some(j) = r.interrupted else {
        return Ok(None);
    };
    let error =
        "the daemon stopped before this configuration finished (power loss, crash or kill); \
                 configurations measured before it are kept";
    // The journal names the configuration that was running; if its record made it
    // to disk, the stop came between configurations and the next one is cut.
    let cut = match &j.current {
        Some(c) => {
            let run_id = format!("{}-{:04}", j.sweep_id, c.index);
            if stored_run_id(store, j.store_end, &run_id)? {
                j.next.clone()
            } else {
                Some(c.clone())
            }
        }
        None => None,
    };
    let done = cut.as_ref().map(|c| c.index).unwrap_or(j.total);
    if let Some(c) = &cut {
        let rec = ResultRecord {
            record: "result".into(),
            schema: SCHEMA,
            ts: now_ms(),
            device_id: device_id.to_string(),
            board: board.to_string(),
            sweep_id: j.sweep_id.clone(),
            run_id: format!("{}-{:04}", j.sweep_id, c.index),
            status: "interrupted".into(),
            error: Some(error.into()),
            model: c.model.clone(),
            backend: c.backend.clone(),
            ep: c.ep.clone(),
            ep_requested: Some(c.ep.clone()),
            precision: c.precision.clone(),
            batch: c.batch,
            threads: c.threads,
            stop_reason: Some("daemon_stopped".into()),
            runtime: if c.backend == "ort" {
                "onnxruntime".into()
            } else {
                c.backend.clone()
            },
            edgebench_version: crate::VERSION.into(),
            ..Default::default()
        };
        store
            .append(&Record::Result(Box::new(rec)).to_json())
            .context("cannot record the interrupted sweep")?;
    }
    store.clear_journal()?;
    log::warn!(
        "sweep {} ({}) was interrupted at configuration {} of {} by the end of the previous run; recorded as interrupted",
        j.sweep_id,
        j.sweep,
        done + 1,
        j.total
    );
    Ok(Some(SweepState {
        state: "interrupted".into(),
        sweep: (!j.sweep.is_empty()).then(|| j.sweep.clone()),
        sweep_id: (!j.sweep_id.is_empty()).then(|| j.sweep_id.clone()),
        request_id: j.request_id.clone(),
        done,
        total: j.total,
        error: Some(error.into()),
        ..Default::default()
    }))
}

/// Whether a result with `run_id` was stored at or after `from`.
fn stored_run_id(store: &Store, from: u64, run_id: &str) -> Result<bool> {
    let lines = store.read_from(from, 10_000)?;
    Ok(lines.iter().any(|l| {
        serde_json::from_str::<serde_json::Value>(&l.line)
            .is_ok_and(|v| v["record"] == "result" && v["run_id"] == run_id)
    }))
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
    seen: RecentIds,
    active: Option<Active>,
    state: SweepState,
    sweep_tx: mpsc::UnboundedSender<SweepEvent>,
    sweep_rx: mpsc::UnboundedReceiver<SweepEvent>,
    started: Instant,
    started_ms: i64,
    boot_at: Option<Instant>,
    next_timetable: Option<Instant>,
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
        let runtimes = info::runtimes(config_path.as_deref(), &sets);
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
            seen: RecentIds::new(RECENT_IDS),
            active: None,
            state: recovered.unwrap_or_else(SweepState::idle),
            sweep_tx,
            sweep_rx,
            started,
            started_ms: now_ms(),
            boot_at,
            next_timetable: None,
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

    async fn run(&mut self) -> Result<()> {
        let mut sigterm = signal(SignalKind::terminate()).context("SIGTERM handler")?;
        let mut sigint = signal(SignalKind::interrupt()).context("SIGINT handler")?;
        let mut sighup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
        self.start_link();
        self.notifier.ready(&self.status_text());
        log::info!("ready: {}", self.status_text());

        let watchdog = service::watchdog_interval();
        let mut watchdog_tick =
            tokio::time::interval(watchdog.map(|w| w / 2).unwrap_or(Duration::from_secs(3600)));
        let mut telemetry_tick = self.telemetry_interval();
        let why = loop {
            tokio::select! {
                _ = sigterm.recv() => break "SIGTERM",
                _ = sigint.recv() => break "SIGINT",
                _ = sighup.recv() => {
                    self.reload().await;
                    telemetry_tick = self.telemetry_interval();
                }
                Some(ev) = recv_opt(&mut self.from_link) => self.on_link(ev).await,
                Some(ev) = self.sweep_rx.recv() => self.on_sweep(ev).await,
                _ = sleep_until_opt(self.boot_at) => {
                    self.boot_at = None;
                    let name = self.setup.cfg.schedule.on_boot.clone();
                    self.submit_scheduled(Origin::Boot, &name).await;
                }
                _ = sleep_until_opt(self.next_timetable) => {
                    self.next_timetable = self.timetable_due();
                    let s = &self.setup.cfg.schedule;
                    let name = if s.sweep.is_empty() { s.on_boot.clone() } else { s.sweep.clone() };
                    if self.sched.timetable_pending() {
                        log::info!("timetable: sweep {name} still pending from the last turn; skipped");
                    } else {
                        self.submit_scheduled(Origin::Timetable, &name).await;
                    }
                }
                _ = tick_opt(&mut telemetry_tick) => self.publish_telemetry().await,
                _ = watchdog_tick.tick(), if watchdog.is_some() => {
                    if self.healthy(watchdog.unwrap_or_default()) {
                        self.notifier.watchdog();
                    }
                }
            }
        };
        self.shutdown(why).await;
        Ok(())
    }

    /// The watchdog is fed only while the loop turns and the link is not stuck.
    fn healthy(&self, period: Duration) -> bool {
        let Some(l) = &self.link else { return true };
        let age = now_ms() - l.heartbeat.load(Ordering::Relaxed);
        let limit = (period.as_millis() as i64).max(15_000);
        if age > limit {
            log::error!("mqtt link stalled for {age} ms; withholding the watchdog ping");
            return false;
        }
        true
    }

    fn telemetry_interval(&self) -> Option<tokio::time::Interval> {
        let s = self.setup.cfg.mqtt.telemetry_interval_s;
        if self.link.is_none() || s <= 0.0 {
            return None;
        }
        let mut i = tokio::time::interval(Duration::from_secs_f64(s.max(0.1)));
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Some(i)
    }

    fn start_link(&mut self) {
        let Some(settings) = self.setup.link.clone() else {
            log::info!("mqtt.host is empty: MQTT off, results are only stored");
            return;
        };
        let seed = self
            .setup
            .device_id
            .bytes()
            .fold(now_ms() as u64, |h, b| h.rotate_left(5) ^ b as u64);
        let (handle, rx) = link::spawn(
            settings,
            self.setup.topics.clone(),
            self.store.clone(),
            seed,
        );
        let info = self.info_payload();
        let _ = handle.tx.try_send(ToLink::Retained(Outbound::new(
            self.setup.topics.info(),
            serde_json::Value::Object(info).to_string(),
            QoS::AtLeastOnce,
            true,
        )));
        let _ = handle.tx.try_send(ToLink::Retained(self.state_message()));
        self.link = Some(handle);
        self.from_link = Some(rx);
    }

    fn state_message(&self) -> Outbound {
        let mut s = self.state.clone();
        s.queued = self.sched.queued();
        Outbound::new(
            self.setup.topics.sweep_state(),
            s.to_json(&self.setup.device_id, now_ms()),
            QoS::AtLeastOnce,
            true,
        )
    }

    async fn to_link(&self, m: ToLink) {
        if let Some(l) = &self.link {
            let _ = l.tx.send(m).await;
        }
    }

    async fn publish_state(&self) {
        self.to_link(ToLink::Retained(self.state_message())).await;
        self.notifier.status(&self.status_text());
    }

    /// One telemetry scrape (sysfs reads, off the runtime), published at QoS 0.
    async fn publish_telemetry(&self) {
        let Some(l) = &self.link else { return };
        if !self.connected {
            return;
        }
        let t = self.telemetry.clone();
        let snapshot = match tokio::task::spawn_blocking(move || t.snapshot()).await {
            Ok(s) => s,
            Err(e) => {
                log::warn!("telemetry scrape failed: {e}");
                return;
            }
        };
        let st = self.store.stats();
        let payload = info::telemetry(
            snapshot,
            &self.setup.device_id,
            &self.state.state,
            self.started.elapsed().as_secs(),
            st.end - st.cursor,
        );
        // Best effort: dropped rather than queued when the link is busy.
        let _ = l.tx.try_send(ToLink::Publish(Outbound::new(
            self.setup.topics.telemetry(),
            payload,
            QoS::AtMostOnce,
            false,
        )));
    }

    fn status_text(&self) -> String {
        let mqtt = match (&self.link, self.connected) {
            (None, _) => "mqtt off",
            (Some(_), true) => "mqtt connected",
            (Some(_), false) => "mqtt not connected",
        };
        let st = self.store.stats();
        let sweep = match (&self.active, &self.state.current) {
            (Some(_), Some(c)) => format!(
                "running sweep {} {}/{}: {c}",
                self.state.sweep.as_deref().unwrap_or("?"),
                self.state.done,
                self.state.total
            ),
            (Some(_), None) => format!(
                "running sweep {}",
                self.state.sweep.as_deref().unwrap_or("?")
            ),
            (None, _) => "idle".into(),
        };
        format!("{sweep}; {mqtt}; {} bytes unsent", st.end - st.cursor)
    }

    async fn on_link(&mut self, ev: FromLink) {
        match ev {
            FromLink::Connected => {
                self.connected = true;
                self.notifier.status(&self.status_text());
            }
            FromLink::Disconnected(why) => {
                self.connected = false;
                log::warn!("mqtt: disconnected: {why}");
                self.notifier.status(&self.status_text());
            }
            FromLink::Command {
                verb,
                payload,
                response_topic,
                correlation,
            } => {
                self.on_command(&verb, &payload, response_topic, correlation)
                    .await
            }
        }
    }

    async fn on_command(
        &mut self,
        verb: &str,
        payload: &[u8],
        response_topic: Option<String>,
        correlation: Option<Bytes>,
    ) {
        let parsed = messages::parse(verb, payload, &self.setup.limits, now_ms());
        let rid = match &parsed {
            Ok(r) => Some(r.request_id.clone()),
            Err(r) => r.request_id.clone(),
        };
        if let Some(id) = &rid {
            if !self.seen.first_time(id) {
                log::info!("command {verb}: request_id `{id}` already answered; ignored");
                return;
            }
        }
        let reply = match parsed {
            Err(r) => r,
            Ok(req) => {
                let rid = req.request_id.clone();
                match req.command {
                    Command::SweepStart(args) => self.sweep_start(&rid, args, req.expires_at).await,
                    Command::SweepCancel { sweep_id, all } => {
                        self.sweep_cancel(&rid, sweep_id.as_deref(), all).await
                    }
                    Command::StatusGet => self.status_reply(&rid),
                    Command::InfoGet => self.info_reply(&rid).await,
                }
            }
        };
        if reply.ok() {
            log::info!(
                "command {verb} ({}): {}: {}",
                rid.as_deref().unwrap_or("-"),
                reply.code.as_str(),
                reply.message
            );
        } else {
            log::warn!(
                "command {verb} ({}) refused: {}: {}",
                rid.as_deref().unwrap_or("-"),
                reply.code.as_str(),
                reply.message
            );
        }
        self.send_reply(&reply, response_topic, correlation).await;
    }

    async fn send_reply(
        &self,
        reply: &Reply,
        response_topic: Option<String>,
        correlation: Option<Bytes>,
    ) {
        let payload: Bytes = reply.to_json(&self.setup.device_id, now_ms()).into();
        self.to_link(ToLink::Publish(Outbound::new(
            self.setup.topics.reply(),
            payload.clone(),
            QoS::AtLeastOnce,
            false,
        )))
        .await;
        if let Some(t) = response_topic {
            let mut o = Outbound::new(t, payload, QoS::AtLeastOnce, false);
            o.correlation = correlation;
            self.to_link(ToLink::Publish(o)).await;
        }
    }

    /// Checks a `sweep-start` against the configuration and the zoo, then queues it.
    async fn sweep_start(&mut self, rid: &str, args: SweepArgs, expires_at: Option<i64>) -> Reply {
        let cfg = self.setup.cfg.clone();
        let Some(sweep) = cfg.sweeps.get(&args.sweep) else {
            let names: Vec<&str> = cfg.sweeps.keys().map(String::as_str).collect();
            return Reply::new(
                Some(rid),
                Code::UnknownSweep,
                format!(
                    "no sweep named `{}` in the configuration (defined: {})",
                    args.sweep,
                    names.join(", ")
                ),
            );
        };
        if let Some(models) = &args.models {
            if let Err(e) = self.setup.zoo.expand(models) {
                return Reply::new(Some(rid), Code::UnknownModel, format!("`models`: {e:#}"));
            }
        }
        if let Some(eps) = &args.eps {
            if let Some(e) = eps.iter().find(|e| !sweep.eps.contains(e)) {
                return Reply::new(
                    Some(rid),
                    Code::InvalidArgument,
                    format!(
                        "`eps`: `{e}` is not configured for sweep `{}` (configured: {})",
                        args.sweep,
                        sweep.eps.join(", ")
                    ),
                );
            }
        }
        let plan = match plan::build(&cfg, &self.setup.zoo, &args) {
            Ok(p) => p,
            Err(e) => return Reply::new(Some(rid), Code::InvalidArgument, format!("{e:#}")),
        };
        if plan.configs.len() > MAX_COMMAND_CONFIGS {
            return Reply::new(
                Some(rid),
                Code::InvalidArgument,
                format!(
                    "{} configurations asked for; one command may ask for at most {MAX_COMMAND_CONFIGS}",
                    plan.configs.len()
                ),
            );
        }
        let sweep_id = plan.sweep_id.clone();
        let total = plan.configs.len();
        let job = Job {
            origin: Origin::Command {
                request_id: rid.to_string(),
            },
            sweep: args.sweep.clone(),
            sweep_id: sweep_id.clone(),
            payload: Queued { plan, expires_at },
        };
        match self.sched.submit(job) {
            Admission::Start(job) => {
                self.start_sweep(job).await;
                Reply::new(
                    Some(rid),
                    Code::Started,
                    format!("sweep {} started: {total} configurations", args.sweep),
                )
                .with("sweep_id", sweep_id)
                .with("total", total)
            }
            Admission::Queued { position } => {
                self.publish_state().await;
                Reply::new(
                    Some(rid),
                    Code::Queued,
                    format!(
                        "sweep {} queued at position {position}: {total} configurations",
                        args.sweep
                    ),
                )
                .with("sweep_id", sweep_id)
                .with("total", total)
                .with("position", position)
            }
            Admission::Busy => Reply::new(
                Some(rid),
                Code::Busy,
                format!(
                    "a sweep is running and {} are queued (commands.queue_depth); try again later",
                    self.sched.queued()
                ),
            ),
        }
    }

    async fn sweep_cancel(&mut self, rid: &str, sweep_id: Option<&str>, all: bool) -> Reply {
        let c = self.sched.cancel(sweep_id, all);
        let mut what = Vec::new();
        if c.running {
            if let Some(a) = &mut self.active {
                a.thread.cancel.store(true, Ordering::Relaxed);
                a.cancelled = true;
                what.push(format!("stopping sweep {}", a.sweep_id));
                self.state.state = "cancelling".into();
            }
        }
        for j in &c.dropped {
            what.push(format!("dropped queued sweep {}", j.sweep_id));
        }
        if what.is_empty() {
            return Reply::new(
                Some(rid),
                Code::NotRunning,
                match sweep_id {
                    Some(id) => format!("no running or queued sweep {id}"),
                    None => "no sweep is running".into(),
                },
            );
        }
        self.publish_state().await;
        Reply::new(Some(rid), Code::Cancelling, what.join("; ")).with("dropped", c.dropped.len())
    }

    fn status_reply(&self, rid: &str) -> Reply {
        let st = self.store.stats();
        let s = &self.state;
        let mut r = Reply::new(Some(rid), Code::Ok, self.status_text())
            .with("state", s.state.clone())
            .with("done", s.done)
            .with("total", s.total)
            .with("queued", self.sched.queued())
            .with("unsent_bytes", st.end - st.cursor)
            .with("uptime_s", self.started.elapsed().as_secs())
            .with("edgebench_version", crate::VERSION);
        for (k, v) in [
            ("sweep", &s.sweep),
            ("sweep_id", &s.sweep_id),
            ("current", &s.current),
        ] {
            if let Some(v) = v {
                r = r.with(k, v.clone());
            }
        }
        r
    }

    async fn info_reply(&self, rid: &str) -> Reply {
        let info = self.info_payload();
        self.to_link(ToLink::Retained(Outbound::new(
            self.setup.topics.info(),
            serde_json::Value::Object(info.clone()).to_string(),
            QoS::AtLeastOnce,
            true,
        )))
        .await;
        let mut r = Reply::new(Some(rid), Code::Ok, "info published");
        for (k, v) in info {
            r = r.with(&k, v);
        }
        r
    }

    /// Queues the boot or timetable sweep.
    async fn submit_scheduled(&mut self, origin: Origin, name: &str) {
        let plan = match plan::build(&self.setup.cfg, &self.setup.zoo, &request(name)) {
            Ok(p) => p,
            Err(e) => {
                log::error!("scheduled sweep {name}: {e:#}");
                return;
            }
        };
        let job = Job {
            origin: origin.clone(),
            sweep: name.to_string(),
            sweep_id: plan.sweep_id.clone(),
            payload: Queued {
                plan,
                expires_at: None,
            },
        };
        match self.sched.submit(job) {
            Admission::Start(job) => self.start_sweep(job).await,
            Admission::Queued { position } => {
                log::info!("{origin:?} sweep {name} queued at position {position}");
                self.publish_state().await;
            }
            Admission::Busy => log::warn!("{origin:?} sweep {name} skipped: the queue is full"),
        }
    }

    /// Starts `job` (the scheduler already made it the running one); a job whose
    /// command expired while it waited is skipped.
    async fn start_sweep(&mut self, mut job: Job<Queued>) {
        loop {
            let expired = job.payload.expires_at.is_some_and(|e| e <= now_ms());
            if !expired {
                break;
            }
            log::warn!("sweep {} expired while queued; not run", job.sweep_id);
            if let Some(rid) = job.origin.request_id() {
                let r = Reply::new(
                    Some(rid),
                    Code::Expired,
                    format!("sweep {} expired while queued; not run", job.sweep_id),
                )
                .with("sweep_id", job.sweep_id.clone());
                self.send_reply(&r, None, None).await;
            }
            match self.sched.finished() {
                Some(next) => job = next,
                None => {
                    self.publish_state().await;
                    return;
                }
            }
        }
        let total = job.payload.plan.configs.len();
        let request_id = job.origin.request_id().map(str::to_string);
        self.state = SweepState {
            state: "running".into(),
            sweep: Some(job.sweep.clone()),
            sweep_id: Some(job.sweep_id.clone()),
            request_id: request_id.clone(),
            done: 0,
            total,
            ..Default::default()
        };
        log::info!(
            "sweep {} ({}) starting: {total} configurations ({:?})",
            job.sweep_id,
            job.sweep,
            job.origin
        );
        match sweep::start(
            self.setup.cfg.clone(),
            self.setup.zoo.clone(),
            job.payload.plan,
            request_id,
            self.store.clone(),
            self.sweep_tx.clone(),
        ) {
            Ok(thread) => {
                self.active = Some(Active {
                    thread,
                    sweep_id: job.sweep_id.clone(),
                    cancelled: false,
                });
            }
            Err(e) => {
                log::error!("sweep {}: {e:#}", job.sweep_id);
                self.state.state = "failed".into();
                self.state.error = Some(format!("{e:#}"));
                let _ = self.sched.finished();
            }
        }
        self.publish_state().await;
    }

    async fn on_sweep(&mut self, ev: SweepEvent) {
        match ev {
            SweepEvent::Stored => self.to_link(ToLink::RecordsAvailable).await,
            SweepEvent::Progress { sweep_id, progress } => {
                if self.state.sweep_id.as_deref() != Some(&sweep_id) {
                    return;
                }
                self.state.done = progress.done;
                self.state.total = progress.total;
                self.state.current = (!progress.current.is_empty()).then_some(progress.current);
                self.state.eta_s = progress.eta_s;
                self.publish_state().await;
            }
            SweepEvent::Finished { sweep_id, outcome } => {
                self.finish_sweep(&sweep_id, outcome, false).await;
                if let Some(next) = self.sched.finished() {
                    self.start_sweep(next).await;
                }
            }
        }
    }

    /// Records how the running sweep ended.
    async fn finish_sweep(
        &mut self,
        sweep_id: &str,
        outcome: Result<crate::bench::runner::SweepOutcome, String>,
        shutting_down: bool,
    ) {
        let Some(active) = self.active.take() else {
            return;
        };
        let _ = active.thread.handle.join();
        self.state.current = None;
        self.state.eta_s = None;
        match outcome {
            Ok(o) => {
                self.state.done = o.results.len();
                self.state.state = match (o.cancelled, active.cancelled, shutting_down) {
                    (false, _, _) => "done",
                    (true, _, true) => "interrupted",
                    (true, true, false) => "cancelled",
                    (true, false, false) => "interrupted",
                }
                .into();
                let failed = o.results.iter().filter(|r| r.status == "failed").count();
                log::info!(
                    "sweep {sweep_id} {}: {} configurations measured, {failed} failed, {} summaries",
                    self.state.state,
                    o.results.len(),
                    o.summaries.len()
                );
            }
            Err(e) => {
                log::error!("sweep {sweep_id} failed: {e}");
                self.state.state = "failed".into();
                self.state.error = Some(e);
            }
        }
        self.publish_state().await;
        release_memory();
    }

    /// SIGHUP: load the configuration again; keep the old one when the new is invalid.
    async fn reload(&mut self) {
        self.notifier.reloading();
        log::info!("SIGHUP: reloading the configuration");
        match Setup::load(self.config_path.as_deref(), &self.sets) {
            Ok(new) => {
                let link_changed = new.link_fingerprint() != self.setup.link_fingerprint();
                if new.store_dir != self.setup.store_dir {
                    log::warn!(
                        "store.dir changed to {}: takes effect at the next restart",
                        new.store_dir.display()
                    );
                }
                let mut new = new;
                new.store_dir = self.setup.store_dir.clone();
                self.sched.set_depth(new.cfg.commands.queue_depth as usize);
                let old_on_boot = self.setup.cfg.schedule.on_boot.clone();
                self.setup = new;
                self.runtimes = info::runtimes(self.config_path.as_deref(), &self.sets);
                if self.setup.cfg.schedule.on_boot != old_on_boot && self.boot_at.is_some() {
                    self.boot_at = (!self.setup.cfg.schedule.on_boot.is_empty()).then(|| {
                        self.started + Duration::from_secs_f64(self.setup.cfg.schedule.boot_delay_s)
                    });
                }
                self.next_timetable = self.timetable_due();
                if link_changed {
                    if let Some(l) = self.link.take() {
                        l.shutdown(LINK_STOP_GRACE).await;
                    }
                    self.from_link = None;
                    self.connected = false;
                    self.start_link();
                } else {
                    let info = self.info_payload();
                    self.to_link(ToLink::Retained(Outbound::new(
                        self.setup.topics.info(),
                        serde_json::Value::Object(info).to_string(),
                        QoS::AtLeastOnce,
                        true,
                    )))
                    .await;
                }
                log::info!("configuration reloaded");
            }
            Err(e) => log::error!("reload failed, keeping the running configuration: {e:#}"),
        }
        self.notifier.ready(&self.status_text());
    }

    /// Stops at a safe point: the running configuration is cut short (recorded as
    /// interrupted), every stored result stays for the next start, `offline` is
    /// published, the cursor is written.
    async fn shutdown(&mut self, why: &str) {
        log::info!("{why}: stopping");
        self.notifier.stopping(&format!("stopping ({why})"));
        self.boot_at = None;
        if let Some(a) = &self.active {
            a.thread.cancel.store(true, Ordering::Relaxed);
            let deadline = Instant::now() + SWEEP_STOP_GRACE;
            loop {
                match tokio::time::timeout_at(deadline, self.sweep_rx.recv()).await {
                    Ok(Some(SweepEvent::Finished { sweep_id, outcome })) => {
                        self.finish_sweep(&sweep_id, outcome, true).await;
                        break;
                    }
                    Ok(Some(SweepEvent::Stored)) => self.to_link(ToLink::RecordsAvailable).await,
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => {
                        log::error!(
                            "the running configuration did not stop within {} s; its sweep will be recorded as interrupted at the next start",
                            SWEEP_STOP_GRACE.as_secs()
                        );
                        self.state.state = "interrupted".into();
                        self.publish_state().await;
                        break;
                    }
                }
            }
        }
        if let Some(l) = self.link.take() {
            l.shutdown(LINK_STOP_GRACE).await;
        }
        let st = self.store.stats();
        log::info!(
            "stopped; {} bytes of results wait for the broker",
            st.end - st.cursor
        );
    }
}

impl Setup {
    /// What the link depends on: `[mqtt]`, the device id, and the secrets read from
    /// files (a changed password file counts too).
    fn link_fingerprint(&self) -> String {
        format!(
            "{:?}|{}|{:?}",
            self.cfg.mqtt,
            self.device_id,
            self.link.as_ref().map(|l| l.options.credentials())
        )
    }
}

/// Gives freed heap back to the system after a sweep (sessions and buffers are
/// large, the idle daemon is small).
fn release_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}

async fn recv_opt<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

async fn tick_opt(i: &mut Option<tokio::time::Interval>) {
    match i {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{JournalConfig, SweepJournal};

    fn cfg(index: usize, batch: u32) -> JournalConfig {
        JournalConfig {
            index,
            model: "tiny_cnn".into(),
            precision: "fp32".into(),
            backend: "ort".into(),
            ep: "cpu".into(),
            batch,
            threads: 1,
        }
    }

    fn journal(store_end: u64) -> SweepJournal {
        SweepJournal {
            sweep: "slow".into(),
            sweep_id: "s1".into(),
            request_id: Some("r1".into()),
            started_ms: 1,
            done: 1,
            total: 4,
            current: Some(cfg(1, 2)),
            next: Some(cfg(2, 4)),
            store_end,
        }
    }

    fn result(run_id: &str) -> String {
        format!(r#"{{"record":"result","run_id":"{run_id}","status":"ok"}}"#)
    }

    /// Reopens the store after a simulated power cut and returns the records after `from`.
    fn recover_in(dir: &Path) -> (Option<SweepState>, Vec<serde_json::Value>) {
        let (store, rec) = Store::open(dir, 1 << 20).unwrap();
        let st = recover("dev", "board", &store, rec).unwrap();
        let lines = store.read_from(0, 100).unwrap();
        let (_, again) = Store::open(dir, 1 << 20).unwrap();
        assert!(again.interrupted.is_none(), "journal cleared");
        (
            st,
            lines
                .iter()
                .map(|l| serde_json::from_str(&l.line).unwrap())
                .collect(),
        )
    }

    #[test]
    fn power_cut_during_a_configuration_records_that_one_as_interrupted() {
        let d = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(d.path(), 1 << 20).unwrap();
        store.append(&result("s1-0000")).unwrap();
        store.write_journal(&journal(store.end())).unwrap();
        drop(store);
        let (st, recs) = recover_in(d.path());
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[1]["run_id"], "s1-0001");
        assert_eq!(recs[1]["status"], "interrupted");
        assert_eq!(recs[1]["batch"], 2);
        let st = st.unwrap();
        assert_eq!(
            (st.state.as_str(), st.done, st.total),
            ("interrupted", 1, 4)
        );
    }

    #[test]
    fn power_cut_between_configurations_cuts_the_next_one() {
        let d = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(d.path(), 1 << 20).unwrap();
        store.append(&result("s1-0000")).unwrap();
        store.write_journal(&journal(store.end())).unwrap();
        // Configuration 1 finished and was stored; the cut came before the next progress.
        store.append(&result("s1-0001")).unwrap();
        drop(store);
        let (st, recs) = recover_in(d.path());
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[2]["run_id"], "s1-0002");
        assert_eq!(recs[2]["batch"], 4);
        assert_eq!(st.unwrap().done, 2);
    }

    #[test]
    fn no_journal_means_nothing_to_recover() {
        let d = tempfile::tempdir().unwrap();
        let (st, recs) = recover_in(d.path());
        assert!(st.is_none() && recs.is_empty());
    }
}
