//! `edgebench collect`: the server-side service that subscribes to what the boards
//! publish and keeps it in the fleet store (DESIGN.md section 14).
//!
//! Two parts with one owner each: the MQTT side (this file) owns the broker
//! connection on a small tokio runtime; the writer ([`writer`]) owns the store
//! connection on its own thread. Messages flow MQTT -> writer; after each committed
//! transaction the writer hands the messages back and only then are they acknowledged
//! (QoS 1, manual acks, persistent session: clean start off, session expiry set). A
//! collector killed at any instant therefore loses nothing the broker held, and the
//! redelivered messages are idempotent upserts.
//!
//! With `[collect] share_group` set, results, summaries and telemetry are subscribed
//! through `$share/<group>/...` so several collectors split them; `info`, `status` and
//! `sweep/state` are retained state that brokers do not deliver to shared
//! subscriptions on subscribe, so every collector subscribes to those directly (their
//! upserts are idempotent, latest wins).

pub mod config;
pub mod writer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rumqttc::v5::mqttbytes::v5::{Filter, Packet};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use rumqttc::Transport;

use crate::config::{Config, MqttConfig};
use crate::fleet::ingest::Kind;
use crate::mqtt::backoff::Backoff;
use writer::{Committed, Incoming, Stats, Writer};

/// Arguments of `edgebench collect`.
#[derive(clap::Args, Debug)]
pub struct CollectArgs {
    /// Config file (`[mqtt]` for the broker, `[collect]` for the store; default
    /// /etc/edgebench/edgebench.toml when present).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Override one config key: `--set collect.share_group=g1` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Store URL: `sqlite:PATH` or `postgres://user@host:port/db` (overrides `[collect] db`).
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,
}

/// Largest packet accepted from the broker. Payloads over `collect.max_payload_bytes`
/// (smaller) are rejected by the writer; this only has to be larger so that they reach
/// it (an over-size packet would cost the connection instead).
const MAX_PACKET: u32 = 64 * 1024 * 1024;

/// The subscription filters: `(filter, shared)`.
pub fn filters(prefix: &str, share_group: &str) -> Vec<(String, bool)> {
    Kind::ALL
        .iter()
        .map(|k| {
            let plain = format!("{prefix}/+/{}", k.suffix());
            let shareable = matches!(k, Kind::Result | Kind::Summary | Kind::Telemetry);
            if shareable && !share_group.is_empty() {
                (format!("$share/{share_group}/{plain}"), true)
            } else {
                (plain, false)
            }
        })
        .collect()
}

/// `edgebench collect`: runs until SIGTERM / SIGINT.
pub fn run(args: &CollectArgs) -> Result<()> {
    crate::daemon::service::init_logging();
    let (cfg, _) = crate::config::load_with_overrides(args.config.as_deref(), &args.set)?;
    let mut cc = cfg.collect.clone();
    if let Some(db) = &args.db {
        cc.db = db.clone();
    }
    cc.validate()?;
    let url = cc.db_url();
    crate::fleet::store::parse_url(&url)?;
    let options = mqtt_options(&cfg, &cc)?;
    let stop = Arc::new(AtomicBool::new(false));
    let store = open_store(&url, &cc, &stop)?;
    log::info!(
        "collect: store {} (schema {}), broker {}:{}, client id {}{}",
        store.describe(),
        crate::fleet::schema::VERSION,
        cfg.mqtt.host,
        cfg.mqtt.port,
        options.client_id(),
        if cc.share_group.is_empty() {
            String::new()
        } else {
            format!(", shared group {}", cc.share_group)
        }
    );
    let stats = Arc::new(Stats::default());
    let (tx, rx) = std::sync::mpsc::channel::<Incoming>();
    let (ack_tx, ack_rx) = tokio::sync::mpsc::unbounded_channel::<Committed>();
    let w = Writer::new(
        store,
        cc.clone(),
        cfg.mqtt.topic_prefix.clone(),
        stats.clone(),
        stop.clone(),
    );
    let writer = std::thread::Builder::new()
        .name("collect-writer".into())
        .spawn(move || w.run(rx, ack_tx))
        .context("starting the writer thread")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let filters = filters(&cfg.mqtt.topic_prefix, &cc.share_group);
    let backoff = Backoff::new(
        Duration::from_secs_f64(cfg.mqtt.backoff_min_s),
        Duration::from_secs_f64(cfg.mqtt.backoff_max_s),
        std::process::id() as u64,
    );
    let r = rt.block_on(mqtt_side(
        options,
        filters,
        tx,
        ack_rx,
        stats.clone(),
        stop.clone(),
        backoff,
    ));
    stop.store(true, Ordering::Relaxed);
    let _ = writer.join();
    log::info!(
        "collect: stopped; {} messages received, {} rows stored, {} duplicates, {} rejected",
        stats.received.load(Ordering::Relaxed),
        stats.stored.load(Ordering::Relaxed),
        stats.duplicates.load(Ordering::Relaxed),
        stats.rejected.load(Ordering::Relaxed)
    );
    r
}

/// Opens the store; a PostgreSQL server that is not up yet is waited for.
fn open_store(
    url: &str,
    cc: &config::CollectConfig,
    stop: &AtomicBool,
) -> Result<Box<dyn crate::fleet::Store>> {
    let pg = matches!(
        crate::fleet::store::parse_url(url)?,
        crate::fleet::store::Url::Postgres(_)
    );
    let mut backoff = Backoff::new(
        Duration::from_millis(200),
        Duration::from_secs_f64(cc.store_backoff_max_s),
        1,
    );
    loop {
        match crate::fleet::open(url) {
            Ok(s) => return Ok(s),
            Err(e) => {
                let text = format!("{e:#}");
                // Only a server that cannot be reached is worth waiting for.
                let waitable =
                    pg && (text.contains("connect") || text.contains("the database system is"));
                if !waitable || stop.load(Ordering::Relaxed) {
                    return Err(e);
                }
                let d = backoff.next_delay();
                log::warn!(
                    "collect: store not reachable ({text}); retrying in {:.1} s",
                    d.as_secs_f64()
                );
                std::thread::sleep(d);
            }
        }
    }
}

/// rumqttc options: persistent session, manual acks, credentials and TLS from `[mqtt]`.
pub fn mqtt_options(cfg: &Config, cc: &config::CollectConfig) -> Result<MqttOptions> {
    let m: &MqttConfig = &cfg.mqtt;
    if m.host.is_empty() {
        bail!("mqtt.host is empty: set the broker the boards publish to");
    }
    let id = if cc.client_id.is_empty() {
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "host".into());
        format!("edgebench-collect-{host}")
    } else {
        cc.client_id.clone()
    };
    let mut o = MqttOptions::new(id, &m.host, m.port);
    o.set_keep_alive(Duration::from_secs(m.keepalive_s.clamp(5, 3600)));
    o.set_clean_start(false);
    o.set_manual_acks(true);
    o.set_connection_timeout(10);
    let mut props = rumqttc::v5::mqttbytes::v5::ConnectProperties::new();
    props.session_expiry_interval = Some(cc.session_expiry_s);
    // At most this many unacknowledged QoS 1 messages in flight to us: two batches,
    // so one can be written while the next fills.
    props.receive_maximum = Some((cc.batch_size * 2).clamp(20, 65_535) as u16);
    props.max_packet_size = Some(MAX_PACKET);
    o.set_connect_properties(props);
    if !m.password_file.is_empty() && m.username.is_empty() {
        bail!("mqtt.password_file is set but mqtt.username is empty");
    }
    if !m.username.is_empty() {
        let pw = if m.password_file.is_empty() {
            String::new()
        } else {
            crate::mqtt::link::read_secret(std::path::Path::new(&m.password_file))
                .context("mqtt.password_file")?
        };
        o.set_credentials(&m.username, pw);
    }
    let t = &m.tls;
    if !t.ca_file.is_empty() {
        let ca = std::fs::read(&t.ca_file)
            .with_context(|| format!("mqtt.tls.ca_file: cannot read {}", t.ca_file))?;
        let client = match (t.cert_file.is_empty(), t.key_file.is_empty()) {
            (true, true) => None,
            (false, false) => Some((
                std::fs::read(&t.cert_file)
                    .with_context(|| format!("mqtt.tls.cert_file: cannot read {}", t.cert_file))?,
                std::fs::read(&t.key_file)
                    .with_context(|| format!("mqtt.tls.key_file: cannot read {}", t.key_file))?,
            )),
            _ => bail!("mqtt.tls.cert_file and mqtt.tls.key_file go together: set both or neither"),
        };
        o.set_transport(Transport::tls(ca, client, None));
    }
    Ok(o)
}

async fn mqtt_side(
    options: MqttOptions,
    filters: Vec<(String, bool)>,
    tx: std::sync::mpsc::Sender<Incoming>,
    mut ack_rx: tokio::sync::mpsc::UnboundedReceiver<Committed>,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    mut backoff: Backoff,
) -> Result<()> {
    let address = format!(
        "{}:{}",
        options.broker_address().0,
        options.broker_address().1
    );
    let (client, mut el): (AsyncClient, EventLoop) = AsyncClient::new(options, 4096);
    let generation = Arc::new(AtomicU64::new(0));
    // Acknowledgements go through their own task: `ack` waits for room in rumqttc's
    // request channel, which only the poll loop below empties.
    let acker = {
        let client = client.clone();
        let generation = generation.clone();
        tokio::spawn(async move {
            while let Some(c) = ack_rx.recv().await {
                if c.generation != generation.load(Ordering::Relaxed) {
                    // Received on an earlier connection: the broker redelivers them on
                    // this one, and those copies are acknowledged instead.
                    continue;
                }
                for p in &c.publishes {
                    if client.ack(p).await.is_err() {
                        break;
                    }
                }
            }
        })
    };
    // Ready once the store is open: a broker that is not up yet is retried, not fatal.
    let notifier = crate::daemon::service::Notifier::from_env();
    notifier.ready(&format!("store open; connecting to {address}"));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("SIGTERM handler")?;
    let mut tx = Some(tx);
    let mut status_tick = tokio::time::interval(Duration::from_secs(60));
    let mut last_status = (0u64, 0u64);
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = status_tick.tick() => {
                let now = (stats.received.load(Ordering::Relaxed), stats.rejected.load(Ordering::Relaxed));
                if now != last_status {
                    last_status = now;
                    let s = format!(
                        "{} received, {} stored, {} duplicates, {} rejected",
                        now.0,
                        stats.stored.load(Ordering::Relaxed),
                        stats.duplicates.load(Ordering::Relaxed),
                        now.1
                    );
                    log::info!("collect: {s}");
                    notifier.status(&s);
                }
            }
            ev = el.poll() => match ev {
                Ok(Event::Incoming(Packet::ConnAck(c))) => {
                    let g = generation.fetch_add(1, Ordering::Relaxed) + 1;
                    backoff.reset();
                    log::info!("collect: connected to {address} (session present: {})", c.session_present);
                    let subs: Vec<Filter> = filters
                        .iter()
                        .map(|(f, _)| Filter::new(f.clone(), QoS::AtLeastOnce))
                        .collect();
                    if let Err(e) = client.subscribe_many(subs).await {
                        log::error!("collect: cannot subscribe: {e}");
                    }
                    notifier.status(&format!("collecting from {address} (connection {g})"));
                }
                Ok(Event::Incoming(Packet::SubAck(s))) => {
                    use rumqttc::v5::mqttbytes::v5::SubscribeReasonCode as R;
                    for (code, (f, _)) in s.return_codes.iter().zip(&filters) {
                        if !matches!(code, R::Success(_)) {
                            log::error!("collect: broker refused the subscription {f}: {code:?}");
                        }
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let m = Incoming { publish: p, generation: generation.load(Ordering::Relaxed) };
                    if let Some(t) = &tx {
                        if t.send(m).is_err() {
                            log::error!("collect: the writer stopped");
                            break;
                        }
                    }
                }
                Ok(Event::Incoming(Packet::Disconnect(d))) => {
                    log::warn!("collect: broker {address} sent DISCONNECT ({:?})", d.reason_code);
                }
                Ok(_) => {}
                Err(e) => {
                    // Acknowledgements queued for the lost connection are dropped: the
                    // broker redelivers those messages on the next one.
                    el.clean();
                    el.pending.clear();
                    // And the ones the writer hands back from now on.
                    generation.fetch_add(1, Ordering::Relaxed);
                    let d = backoff.next_delay();
                    log::warn!("collect: broker {address}: {e}; retrying in {:.1} s", d.as_secs_f64());
                    tokio::select! {
                        _ = tokio::time::sleep(d) => {}
                        _ = term.recv() => break,
                    }
                }
            }
        }
    }
    // Shutdown: let the writer commit what it holds, acknowledge that, disconnect.
    notifier.stopping("flushing the last batch");
    stop.store(true, Ordering::Relaxed);
    drop(tx.take());
    let flush = async {
        loop {
            if acker.is_finished() {
                break;
            }
            if el.poll().await.is_err() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), flush).await;
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Ok(ev) = el.poll().await {
            if matches!(ev, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                break;
            }
        }
    })
    .await;
    Ok(())
}
