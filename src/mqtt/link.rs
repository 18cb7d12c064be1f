//! The link: the one place that talks to the broker (DESIGN.md section 6).
//!
//! Two tasks. The *poller* owns rumqttc's `EventLoop` and polls it always (nothing
//! reaches the wire otherwise); after an error it waits out an exponential backoff
//! with jitter, because rumqttc would reconnect at once. The *core* owns the session
//! logic: on every connection acknowledgement it publishes `online` (retained),
//! subscribes to the command topics, re-publishes the retained info and sweep state,
//! then drains the store from its cursor; it forwards commands to the daemon and
//! publishes what the daemon asks for. Callers talk to the core through a bounded
//! channel ([`LinkHandle`]).
//!
//! Acknowledgement tracking: rumqttc numbers QoS 1 publishes itself and reports the
//! number only when it writes the packet (`Outgoing::Publish(pkid)`), in the order
//! requests were queued. The core queues a tag with every publish (FIFO); the poller
//! pairs each written publish with the next tag, and each `PubAck` with its tag. A
//! result's store cursor moves only on its `PubAck`. On a connection error both
//! sides are reset under one lock and rumqttc's own replay queue is emptied: the
//! store is the replay queue, drained again from the cursor after the next
//! `ConnAck` (at least once; consumers de-duplicate on `run_id`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use rumqttc::tokio_rustls::rustls::{ClientConfig, RootCertStore};
use rumqttc::v5::mqttbytes::v5::{
    ConnectProperties, Filter, LastWill, Packet, PubAckReason, Publish, PublishProperties,
    RetainForwardRule,
};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{
    AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Request, StateError,
};
use rumqttc::{Outgoing, TlsConfiguration, Transport};
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::task::JoinHandle;

use super::backoff::Backoff;
use super::deadletter::{self, DeadLetters};
use super::identity;
use super::messages::{self, Code, Reply};
use super::topics::Topics;
use crate::bench::result::now_ms;
use crate::config::{MqttConfig, MqttTlsConfig};
use crate::store::Store;

/// Results published but not yet acknowledged, at most (below mosquitto's default
/// receive maximum of 20, so rumqttc never has to hold one back).
const WINDOW: usize = 16;
/// Requests rumqttc may hold in its channel.
const REQUEST_CAPACITY: usize = 64;
/// Commands waiting for the daemon; more are answered `busy` by the link.
const COMMAND_CAPACITY: usize = 64;
/// Replies held while rumqttc's queue is full; more are dropped (counted).
const HELD_MAX: usize = 4096;
/// An error PUBACK that cannot be pinned to one record counts against every record
/// in flight; a record with this many goes to the dead-letter file.
const MAX_STRIKES: u32 = 3;
/// Largest packet the broker may send us (commands are refused above
/// `commands.max_payload_bytes` with a reply; this only has to be larger).
pub const MAX_INCOMING_PACKET: u32 = 256 * 1024;

/// Connection settings, with secrets read from their files.
#[derive(Clone)]
pub struct LinkSettings {
    pub options: MqttOptions,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// `host:port`, for messages.
    pub address: String,
    /// For the replies the link writes itself (`busy`, refused publishes).
    pub device_id: String,
    /// A birth topic to watch (Home Assistant's `homeassistant/status`): `online` there
    /// makes the link publish its retained messages again. `None`: not subscribed.
    pub rebirth_topic: Option<String>,
}

impl std::fmt::Debug for LinkSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkSettings")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl LinkSettings {
    /// Builds the rumqttc options from `[mqtt]`: client id from the device id and
    /// the machine hash, a persistent session (`session_expiry_s`), Last Will
    /// `offline` (retained), credentials (password from `password_file`, refused over
    /// plain text unless allowed), TLS from `tls.*`, packet size. Errors name the key
    /// and the file.
    pub fn from_config(
        m: &MqttConfig,
        device_id: &str,
        topics: &Topics,
        machine: Option<&str>,
    ) -> Result<LinkSettings> {
        if m.host.is_empty() {
            bail!("mqtt.host is empty (MQTT is off)");
        }
        let mut o = MqttOptions::new(identity::client_id(device_id, machine), &m.host, m.port);
        // rumqttc gives up on a connection one interval after an unanswered ping,
        // so up to two intervals after it died: pinging every half of keepalive_s
        // notices a dead (stalled, half-open) connection within keepalive_s.
        o.set_keep_alive(Duration::from_secs((m.keepalive_s / 2).clamp(5, 1800)));
        // A persistent session: the broker keeps the subscriptions and queues QoS 1
        // commands sent while the board reconnects.
        o.set_clean_start(m.session_expiry_s == 0);
        o.set_connection_timeout(10);
        let mut props = ConnectProperties::new();
        props.max_packet_size = Some(MAX_INCOMING_PACKET);
        props.session_expiry_interval = (m.session_expiry_s > 0).then_some(m.session_expiry_s);
        o.set_connect_properties(props);
        o.set_last_will(LastWill::new(
            topics.status(),
            "offline",
            QoS::AtLeastOnce,
            true,
            None,
        ));
        let tls = tls_config(&m.tls)?;
        if !m.password_file.is_empty() && m.username.is_empty() {
            bail!("mqtt.password_file is set but mqtt.username is empty");
        }
        if !m.username.is_empty() {
            let password = if m.password_file.is_empty() {
                String::new()
            } else {
                let path = Path::new(&m.password_file);
                check_private(path).context("mqtt.password_file")?;
                read_secret(path).context("mqtt.password_file")?
            };
            if !password.is_empty() && tls.is_none() {
                if !m.allow_plaintext_password {
                    bail!(
                        "mqtt.password_file: the password would travel in plain text to {}:{}; \
                         turn TLS on (mqtt.tls.enabled or mqtt.tls.ca_file) or set \
                         mqtt.allow_plaintext_password = true",
                        m.host,
                        m.port
                    );
                }
                log::warn!(
                    "mqtt: the password travels in plain text to {}:{} (mqtt.allow_plaintext_password = true)",
                    m.host,
                    m.port
                );
            }
            o.set_credentials(&m.username, password);
        }
        if let Some(c) = tls {
            o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                Arc::new(c),
            )));
        }
        Ok(LinkSettings {
            options: o,
            backoff_min: Duration::from_secs_f64(m.backoff_min_s),
            backoff_max: Duration::from_secs_f64(m.backoff_max_s),
            address: format!("{}:{}", m.host, m.port),
            device_id: device_id.to_string(),
            rebirth_topic: None,
        })
    }
}

/// The rustls configuration of `[mqtt.tls]`, or `None` when TLS is off: roots from
/// the system (`enabled`) and/or `ca_file`, a client certificate from `cert_file` +
/// `key_file` (the key must be private to its owner).
fn tls_config(t: &MqttTlsConfig) -> Result<Option<ClientConfig>> {
    if !t.enabled && t.ca_file.is_empty() {
        if !t.cert_file.is_empty() || !t.key_file.is_empty() {
            bail!(
                "mqtt.tls.cert_file / key_file need TLS: set mqtt.tls.enabled or mqtt.tls.ca_file"
            );
        }
        return Ok(None);
    }
    let mut roots = RootCertStore::empty();
    if t.enabled {
        match rustls_native_certs::load_native_certs() {
            Ok(certs) => {
                let (added, _) = roots.add_parsable_certificates(certs);
                log::debug!("mqtt.tls: {added} system CA certificates");
            }
            Err(e) => log::warn!("mqtt.tls.enabled: cannot read the system CA roots: {e}"),
        }
    }
    if !t.ca_file.is_empty() {
        let pem = std::fs::read(&t.ca_file)
            .with_context(|| format!("mqtt.tls.ca_file: cannot read {}", t.ca_file))?;
        let certs = rustls_pemfile::certs(&mut pem.as_slice())
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("mqtt.tls.ca_file: {} is not PEM", t.ca_file))?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            bail!("mqtt.tls.ca_file: no CA certificate in {}", t.ca_file);
        }
    }
    if roots.is_empty() {
        bail!("mqtt.tls.enabled: no system CA certificates found (install ca-certificates or set mqtt.tls.ca_file)");
    }
    let builder = ClientConfig::builder().with_root_certificates(roots);
    let config = match (t.cert_file.is_empty(), t.key_file.is_empty()) {
        (true, true) => builder.with_no_client_auth(),
        (false, false) => {
            let pem = std::fs::read(&t.cert_file)
                .with_context(|| format!("mqtt.tls.cert_file: cannot read {}", t.cert_file))?;
            let chain = rustls_pemfile::certs(&mut pem.as_slice())
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("mqtt.tls.cert_file: {} is not PEM", t.cert_file))?;
            if chain.is_empty() {
                bail!("mqtt.tls.cert_file: no certificate in {}", t.cert_file);
            }
            let key_path = Path::new(&t.key_file);
            check_private(key_path).context("mqtt.tls.key_file")?;
            let pem = std::fs::read(key_path)
                .with_context(|| format!("mqtt.tls.key_file: cannot read {}", t.key_file))?;
            let key = rustls_pemfile::private_key(&mut pem.as_slice())
                .with_context(|| format!("mqtt.tls.key_file: {} is not PEM", t.key_file))?
                .with_context(|| format!("mqtt.tls.key_file: no private key in {}", t.key_file))?;
            builder
                .with_client_auth_cert(chain, key)
                .context("mqtt.tls.cert_file / key_file do not make a client certificate")?
        }
        _ => bail!("mqtt.tls.cert_file and mqtt.tls.key_file go together: set both or neither"),
    };
    Ok(Some(config))
}

/// Refuses a secret file that its group or others may read or write (like ssh).
fn check_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "{} is accessible to group or others (mode {mode:03o}); `chmod 600` it",
            path.display()
        );
    }
    Ok(())
}

/// A password file: its content without the trailing newline.
pub(crate) fn read_secret(path: &Path) -> Result<String> {
    let s =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let s = s.strip_suffix('\n').unwrap_or(&s);
    let s = s.strip_suffix('\r').unwrap_or(s);
    Ok(s.to_string())
}

/// Something to publish.
#[derive(Debug, Clone)]
pub struct Outbound {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// MQTT 5 correlation data (replies to a response topic).
    pub correlation: Option<Bytes>,
}

impl Outbound {
    pub fn new(topic: String, payload: impl Into<Bytes>, qos: QoS, retain: bool) -> Outbound {
        Outbound {
            topic,
            payload: payload.into(),
            qos,
            retain,
            correlation: None,
        }
    }
}

/// Requests to the link.
#[derive(Debug)]
pub enum ToLink {
    /// Publish now if connected, else drop (replies, telemetry).
    Publish(Outbound),
    /// A retained message that must be current after every reconnect (info, sweep
    /// state): remembered, and published now if connected.
    Retained(Outbound),
    /// New records are durable in the store.
    RecordsAvailable,
    /// Deliver what can be delivered within the grace period, publish `offline`,
    /// disconnect, persist the cursor; then answer.
    Shutdown {
        grace: Duration,
        done: oneshot::Sender<()>,
    },
}

/// Commands from the link (a bounded channel: when it is full the link answers
/// `busy` itself and counts; connection state travels separately, see [`LinkState`]).
#[derive(Debug)]
pub enum FromLink {
    /// A message on a command topic.
    Command {
        verb: String,
        payload: Bytes,
        /// MQTT 5 response topic, when the sender gave one without wildcards.
        response_topic: Option<String>,
        correlation: Option<Bytes>,
        /// Arrived on the fleet topic (`<topic_prefix>/all/cmd/<verb>`).
        fleet: bool,
        /// Published with the retain flag (never acted on).
        retained: bool,
        /// MQTT 5 message expiry left when the broker delivered it, seconds.
        message_expiry_s: Option<u32>,
    },
}

/// The connection as the link sees it (a `watch`: never dropped, the latest wins).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LinkState {
    pub connected: bool,
    /// Why the last connection ended (empty before the first one).
    pub why: String,
}

/// Counters of the link, for `status-get`.
#[derive(Debug, Default)]
pub struct LinkStats {
    /// Commands answered `busy` by the link because the daemon was not keeping up.
    pub commands_busy: AtomicU64,
    /// Replies (and other non-retained messages) dropped because rumqttc's queue
    /// was full; each is logged.
    pub replies_dropped: AtomicU64,
}

/// Handle of a running link.
pub struct LinkHandle {
    pub tx: mpsc::Sender<ToLink>,
    /// The core, the poller (rumqttc's event loop) and the cursor writer: all
    /// aborted when the handle goes, so an old connection can never live on (and
    /// reconnect with the same client id) after a reload or a shutdown.
    tasks: Vec<tokio::task::AbortHandle>,
    /// Unix ms of the core's last loop turn (for the watchdog).
    pub heartbeat: Arc<AtomicI64>,
    pub state: watch::Receiver<LinkState>,
    pub stats: Arc<LinkStats>,
    pub dead_letters: Arc<DeadLetters>,
}

/// The shutdown sequence's own steps (results, `offline`, DISCONNECT) end this
/// long after `grace` at the latest; [`LinkHandle::shutdown`] waits a little more.
const SHUTDOWN_STEPS: Duration = Duration::from_millis(2500);

impl LinkHandle {
    /// Runs the shutdown sequence and waits for it: at most `grace` plus 3 s, then
    /// every task of the link is aborted.
    pub async fn shutdown(self, grace: Duration) {
        let (done, rx) = oneshot::channel();
        let end = tokio::time::Instant::now() + grace + SHUTDOWN_STEPS + Duration::from_millis(500);
        let sent =
            tokio::time::timeout_at(end, self.tx.send(ToLink::Shutdown { grace, done })).await;
        if matches!(sent, Ok(Ok(()))) {
            let _ = tokio::time::timeout_at(end, rx).await;
        }
        // Drop aborts every task.
    }
}

impl Drop for LinkHandle {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// What a queued publish was, so its acknowledgement can be acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Plain,
    Record { offset: u64, end: u64 },
    Offline,
}

/// Shared between the poller and the core; every change of connection state and
/// every queued publish happens under this lock, so the FIFO always matches
/// rumqttc's request order.
#[derive(Default)]
struct Tracker {
    connected: bool,
    fifo: VecDeque<Tag>,
    inflight: HashMap<u16, Tag>,
}

impl Tracker {
    fn reset(&mut self, connected: bool) {
        self.connected = connected;
        self.fifo.clear();
        self.inflight.clear();
    }
}

fn lock(t: &Mutex<Tracker>) -> MutexGuard<'_, Tracker> {
    t.lock().unwrap_or_else(|e| e.into_inner())
}

/// Events from the poller to the core.
#[derive(Debug)]
enum Polled {
    /// With the broker's maximum packet size, when it set one.
    ConnAck {
        max_packet: Option<u32>,
    },
    Message(rumqttc::v5::mqttbytes::v5::Publish),
    Acked(Tag),
    /// The broker answered this publish with an error reason code.
    Refused {
        tag: Tag,
        reason: String,
    },
    /// An error PUBACK that could not be pinned to one publish: these were in flight.
    Suspects {
        tags: Vec<Tag>,
        reason: String,
    },
    Disconnected(String),
}

/// Starts the link on the current tokio runtime.
pub fn spawn(
    settings: LinkSettings,
    topics: Topics,
    store: Arc<Store>,
    seed: u64,
) -> (LinkHandle, mpsc::Receiver<FromLink>) {
    let (client, eventloop) = AsyncClient::new(settings.options.clone(), REQUEST_CAPACITY);
    let tracker = Arc::new(Mutex::new(Tracker::default()));
    let (polled_tx, polled_rx) = mpsc::unbounded_channel();
    let backoff = Backoff::new(settings.backoff_min, settings.backoff_max, seed);
    let poller = tokio::spawn(poll_forever(
        eventloop,
        tracker.clone(),
        polled_tx,
        backoff,
        settings.address.clone(),
    ));
    let (tx, rx) = mpsc::channel(64);
    let (up_tx, up_rx) = mpsc::channel(COMMAND_CAPACITY);
    let (state_tx, state_rx) = watch::channel(LinkState::default());
    let stats = Arc::new(LinkStats::default());
    let dead_letters = Arc::new(DeadLetters::new(store.dir(), deadletter::MAX_BYTES));
    let heartbeat = Arc::new(AtomicI64::new(now_ms()));
    let persist = Arc::new(Notify::new());
    let persister = tokio::spawn(persist_cursor(store.clone(), persist.clone()));
    let core = Core {
        client,
        tracker,
        topics,
        store,
        up: up_tx,
        state: state_tx,
        stats: stats.clone(),
        dead_letters: dead_letters.clone(),
        device_id: settings.device_id.clone(),
        rebirth_topic: settings.rebirth_topic.clone(),
        notices: Vec::new(),
        strikes: HashMap::new(),
        retained: Vec::new(),
        ready: false,
        next_send: 0,
        outstanding: 0,
        blocked: false,
        held: VecDeque::new(),
        max_packet: None,
        persist,
        heartbeat: heartbeat.clone(),
    };
    let tasks = vec![poller.abort_handle(), persister.abort_handle()];
    let task = tokio::spawn(core.run(rx, polled_rx, poller, persister));
    let mut tasks = tasks;
    tasks.push(task.abort_handle());
    (
        LinkHandle {
            tx,
            tasks,
            heartbeat,
            state: state_rx,
            stats,
            dead_letters,
        },
        up_rx,
    )
}

/// The poller: polls the event loop forever, pairs publishes with tags, backs off
/// after errors.
async fn poll_forever(
    mut eventloop: EventLoop,
    tracker: Arc<Mutex<Tracker>>,
    tx: mpsc::UnboundedSender<Polled>,
    mut backoff: Backoff,
    address: String,
) {
    let port = eventloop.options.broker_address().1;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                if backoff.attempts() > 0 {
                    log::info!(
                        "mqtt: connected to {address} after {} failed attempts",
                        backoff.attempts()
                    );
                } else {
                    log::info!("mqtt: connected to {address}");
                }
                backoff.reset();
                if nodelay_to(port) == 0 {
                    log::debug!("mqtt: no TCP socket to port {port} found for TCP_NODELAY");
                }
                lock(&tracker).reset(true);
                let max_packet = eventloop.state.max_outgoing_packet_size;
                let _ = tx.send(Polled::ConnAck { max_packet });
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let _ = tx.send(Polled::Message(p));
            }
            Ok(Event::Incoming(Packet::PubAck(a))) => {
                let tag = lock(&tracker).inflight.remove(&a.pkid);
                if let Some(tag) = tag {
                    let _ = tx.send(Polled::Acked(tag));
                }
            }
            Ok(Event::Incoming(Packet::Disconnect(d))) => {
                log::warn!(
                    "mqtt: broker {address} sent DISCONNECT ({:?})",
                    d.reason_code
                );
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                let mut t = lock(&tracker);
                let tag = t.fifo.pop_front().unwrap_or(Tag::Plain);
                if pkid != 0 {
                    t.inflight.insert(pkid, tag);
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                lock(&tracker).reset(false);
                return;
            }
            Ok(_) => {}
            Err(e) => {
                let refused = {
                    // Forget rumqttc's replay queue (and anything queued meanwhile):
                    // the store replays results after the next ConnAck.
                    let mut t = lock(&tracker);
                    let refused = match &e {
                        ConnectionError::MqttState(StateError::PubAckFail { reason }) => {
                            Some(pin_refused(&mut eventloop, &mut t, *reason, &tx))
                        }
                        _ => None,
                    };
                    eventloop.clean();
                    eventloop.pending.clear();
                    // rumqttc 0.24's clean() keeps a publish that collided on a packet id
                    // (the broker stalled with every id in flight); left there it fails
                    // each new connection after two pings with CollisionTimeout. The
                    // store sends that record again after the ConnAck.
                    eventloop.state.collision = None;
                    t.reset(false);
                    refused
                };
                let why = describe(&e);
                // rumqttc 0.24 closes the connection on an error PUBACK. A refused
                // record is now in the dead-letter file: reconnect at once and go on.
                // Not a broker outage either when another message was refused (a
                // reply to a response topic the ACL denies): a short pause only.
                if let Some(Some(tag)) = refused {
                    log::warn!("mqtt: {address}: {why}; reconnecting");
                    let _ = tx.send(Polled::Disconnected(why));
                    let pause = match tag {
                        Tag::Record { .. } => 50,
                        _ => 1000,
                    };
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                    continue;
                }
                let delay = backoff.next_delay();
                log::warn!(
                    "mqtt: {address}: {why}; retrying in {:.1} s (attempt {})",
                    delay.as_secs_f64(),
                    backoff.attempts()
                );
                let _ = tx.send(Polled::Disconnected(why));
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// After an error PUBACK (rumqttc 0.24 turns it into a connection error without
/// the packet id): finds the refused publish. rumqttc has already moved every
/// unacknowledged publish into `pending`, and queued the successful PUBACKs read in
/// the same batch as events; what is in flight in our tracker but in neither is the
/// refused one. Successful PUBACKs are reported now (their records are delivered).
/// Returns the refused tag when it could be pinned down.
fn pin_refused(
    eventloop: &mut EventLoop,
    t: &mut Tracker,
    reason: PubAckReason,
    tx: &mpsc::UnboundedSender<Polled>,
) -> Option<Tag> {
    let pending: HashSet<u16> = eventloop
        .pending
        .iter()
        .filter_map(|r| match r {
            Request::Publish(p) => Some(p.pkid),
            _ => None,
        })
        .collect();
    // Keep every other event (commands read in the same batch) for after the reconnect.
    let events = std::mem::take(&mut eventloop.state.events);
    for ev in events {
        match ev {
            Event::Incoming(Packet::PubAck(a)) => {
                if let Some(tag) = t.inflight.remove(&a.pkid) {
                    let _ = tx.send(Polled::Acked(tag));
                }
            }
            other => eventloop.state.events.push_back(other),
        }
    }
    let candidates: Vec<Tag> = t
        .inflight
        .iter()
        .filter(|(pkid, _)| !pending.contains(pkid))
        .map(|(_, tag)| *tag)
        .collect();
    let reason = format!("{reason:?}");
    match candidates.as_slice() {
        [tag] => {
            let _ = tx.send(Polled::Refused { tag: *tag, reason });
            Some(*tag)
        }
        _ => {
            log::warn!(
                "mqtt: the broker refused a publish ({reason}) that cannot be told apart from {} others in flight",
                candidates.len().saturating_sub(1)
            );
            let _ = tx.send(Polled::Suspects {
                tags: candidates,
                reason,
            });
            None
        }
    }
}

/// Turns Nagle's algorithm off on this process's TCP connections to `port` (the
/// broker). rumqttc 0.24 has no option for it, and with Nagle a reply written right
/// after another small packet waits for the broker's delayed ACK (about 40 ms).
/// Returns how many sockets were changed.
fn nodelay_to(port: u16) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    let mut n = 0;
    for e in dir.flatten() {
        let Some(fd) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if peer_port(fd) == Some(port) {
            let one: libc::c_int = 1;
            // SAFETY: setsockopt on a descriptor that getpeername just showed to be
            // a connected TCP socket; the option value outlives the call.
            let rc = unsafe {
                libc::setsockopt(
                    fd,
                    libc::IPPROTO_TCP,
                    libc::TCP_NODELAY,
                    &one as *const libc::c_int as *const libc::c_void,
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if rc == 0 {
                n += 1;
            }
        }
    }
    n
}

/// The remote port of a connected TCP socket `fd`, else `None`.
fn peer_port(fd: i32) -> Option<u16> {
    let mut ty: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `ty`; a descriptor that is
    // not a socket makes it fail with ENOTSOCK.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            &mut ty as *mut libc::c_int as *mut libc::c_void,
            &mut len,
        )
    };
    if rc != 0 || ty != libc::SOCK_STREAM {
        return None;
    }
    // SAFETY: sockaddr_storage is plain data, valid when zeroed.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut alen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: getpeername writes at most `alen` bytes into `addr`.
    let rc = unsafe {
        libc::getpeername(
            fd,
            &mut addr as *mut libc::sockaddr_storage as *mut libc::sockaddr,
            &mut alen,
        )
    };
    if rc != 0 {
        return None;
    }
    match addr.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let a =
                unsafe { &*(&addr as *const libc::sockaddr_storage as *const libc::sockaddr_in) };
            Some(u16::from_be(a.sin_port))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let a =
                unsafe { &*(&addr as *const libc::sockaddr_storage as *const libc::sockaddr_in6) };
            Some(u16::from_be(a.sin6_port))
        }
        _ => None,
    }
}

/// A connection error in words a user can act on.
fn describe(e: &ConnectionError) -> String {
    use rumqttc::v5::mqttbytes::v5::ConnectReturnCode as C;
    match e {
        ConnectionError::ConnectionRefused(code) => {
            let hint = match code {
                C::BadUserNamePassword | C::NotAuthorized => {
                    " (check mqtt.username and mqtt.password_file)"
                }
                C::ClientIdentifierNotValid => " (check device.id)",
                _ => "",
            };
            format!("broker refused the connection: {code:?}{hint}")
        }
        ConnectionError::Io(io) => format!("connection failed: {io}"),
        ConnectionError::Tls(t) => format!("TLS failed: {t} (check mqtt.tls.*)"),
        ConnectionError::Timeout(_) => "connection timed out".into(),
        ConnectionError::MqttState(StateError::PubAckFail { reason }) => {
            format!("the broker refused a publish: {reason:?}")
        }
        other => format!("connection lost: {other}"),
    }
}

/// Writes the cursor to disk off the runtime whenever acknowledgements moved it;
/// notifications arriving meanwhile coalesce into one more write.
async fn persist_cursor(store: Arc<Store>, notify: Arc<Notify>) {
    loop {
        notify.notified().await;
        let s = store.clone();
        match tokio::task::spawn_blocking(move || s.persist_cursor()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => log::error!("store: cannot write the cursor: {e:#}"),
            Err(e) => log::error!("store: cursor writer failed: {e}"),
        }
    }
}

enum Sent {
    Queued,
    NotConnected,
    Full,
    /// Above the broker's maximum packet size (CONNACK): rumqttc would turn it into a
    /// connection error, and so again after every reconnect. The size in bytes.
    TooLarge(usize),
}

struct Core {
    client: AsyncClient,
    tracker: Arc<Mutex<Tracker>>,
    topics: Topics,
    store: Arc<Store>,
    up: mpsc::Sender<FromLink>,
    state: watch::Sender<LinkState>,
    stats: Arc<LinkStats>,
    dead_letters: Arc<DeadLetters>,
    device_id: String,
    /// See [`LinkSettings::rebirth_topic`].
    rebirth_topic: Option<String>,
    /// Error replies about refused records, published after the next ConnAck.
    notices: Vec<Outbound>,
    /// Error PUBACKs that could not be pinned down, per record offset.
    strikes: HashMap<u64, u32>,
    /// Retained messages re-published after every ConnAck (topic -> latest).
    retained: Vec<Outbound>,
    /// `online` published and subscribed in this connection.
    ready: bool,
    /// Offset of the next stored record to publish in this connection.
    next_send: u64,
    /// Results published and not yet acknowledged.
    outstanding: usize,
    /// A drain stopped because rumqttc's channel was full; retry soon.
    blocked: bool,
    /// Replies waiting for room in rumqttc's queue (at most [`HELD_MAX`]).
    held: VecDeque<Outbound>,
    /// The broker's maximum packet size in this connection.
    max_packet: Option<u32>,
    persist: Arc<Notify>,
    heartbeat: Arc<AtomicI64>,
}

impl Core {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<ToLink>,
        mut polled: mpsc::UnboundedReceiver<Polled>,
        poller: JoinHandle<()>,
        persister: JoinHandle<()>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.heartbeat.store(now_ms(), Ordering::Relaxed);
            tokio::select! {
                Some(ev) = polled.recv() => self.on_polled(ev).await,
                msg = rx.recv() => match msg {
                    Some(ToLink::Shutdown { grace, done }) => {
                        self.shutdown(grace, &mut polled, poller, persister).await;
                        let _ = done.send(());
                        return;
                    }
                    Some(m) => self.on_request(m),
                    None => {
                        self.shutdown(Duration::ZERO, &mut polled, poller, persister).await;
                        return;
                    }
                },
                _ = tokio::time::sleep(Duration::from_millis(20)), if !self.held.is_empty() => {
                    self.flush_held();
                }
                _ = tokio::time::sleep(Duration::from_millis(200)), if self.blocked => {
                    self.blocked = false;
                    self.drain();
                }
                _ = tick.tick() => {}
            }
        }
    }

    fn publish(&self, o: &Outbound, tag: Tag) -> Sent {
        let mut t = lock(&self.tracker);
        if !t.connected {
            return Sent::NotConnected;
        }
        let props = o.correlation.as_ref().map(|c| PublishProperties {
            correlation_data: Some(c.clone()),
            ..Default::default()
        });
        if let Some(max) = self.max_packet {
            // The size rumqttc checks (packet id not yet assigned).
            let size =
                Publish::new(o.topic.as_str(), o.qos, o.payload.clone(), props.clone()).size();
            if size > max as usize {
                return Sent::TooLarge(size);
            }
        }
        let res = match props {
            Some(p) => self.client.try_publish_with_properties(
                o.topic.clone(),
                o.qos,
                o.retain,
                o.payload.clone(),
                p,
            ),
            None => self
                .client
                .try_publish(o.topic.clone(), o.qos, o.retain, o.payload.clone()),
        };
        match res {
            Ok(()) => {
                t.fifo.push_back(tag);
                Sent::Queued
            }
            Err(_) => Sent::Full,
        }
    }

    async fn on_polled(&mut self, ev: Polled) {
        match ev {
            Polled::ConnAck { max_packet } => {
                self.ready = false;
                self.max_packet = max_packet;
                let online = Outbound::new(self.topics.status(), "online", QoS::AtLeastOnce, true);
                if !matches!(self.publish(&online, Tag::Plain), Sent::Queued) {
                    return;
                }
                // Retained commands: the broker must not send them at subscription
                // (retain handling 2), and live ones keep their flag (retain as
                // published) so they can be recognised and ignored.
                let filters = self.topics.command_filters().map(|f| Filter {
                    path: f,
                    qos: QoS::AtLeastOnce,
                    nolocal: false,
                    preserve_retain: true,
                    retain_forward_rule: RetainForwardRule::Never,
                });
                if let Err(e) = self.client.try_subscribe_many(filters) {
                    log::warn!("mqtt: cannot queue the subscription: {e}");
                    return;
                }
                if let Some(t) = &self.rebirth_topic {
                    if let Err(e) = self.client.try_subscribe(t.clone(), QoS::AtLeastOnce) {
                        log::warn!("mqtt: cannot queue the subscription to {t}: {e}");
                    }
                }
                for r in self.retained.clone() {
                    if let Sent::TooLarge(size) = self.publish(&r, Tag::Plain) {
                        self.too_large(&r, size);
                    }
                }
                for n in std::mem::take(&mut self.notices) {
                    self.publish(&n, Tag::Plain);
                }
                self.ready = true;
                self.next_send = self.store.cursor();
                self.outstanding = 0;
                self.state.send_replace(LinkState {
                    connected: true,
                    why: String::new(),
                });
                self.drain();
            }
            Polled::Disconnected(why) => {
                self.drop_held();
                if self.ready {
                    self.state.send_replace(LinkState {
                        connected: false,
                        why,
                    });
                }
                self.ready = false;
                self.outstanding = 0;
            }
            Polled::Refused {
                tag: Tag::Record { offset, end },
                reason,
            } => self.dead_letter(offset, end, &reason),
            Polled::Refused { tag, reason } => log::error!(
                "mqtt: the broker refused a message that is not a stored record ({tag:?}: {reason}); dropped"
            ),
            Polled::Suspects { tags, reason } => {
                for t in tags {
                    if let Tag::Record { offset, end } = t {
                        let n = self.strikes.entry(offset).or_insert(0);
                        *n += 1;
                        if *n >= MAX_STRIKES {
                            self.strikes.remove(&offset);
                            self.dead_letter(offset, end, &reason);
                        }
                    }
                }
            }
            Polled::Acked(tag) if !self.held.is_empty() => {
                self.flush_held();
                self.on_acked(tag);
            }
            Polled::Acked(tag) => self.on_acked(tag),
            Polled::Message(p) => self.on_message(p),
        }
    }

    fn on_acked(&mut self, tag: Tag) {
        if let Tag::Record { offset, end } = tag {
            self.store.ack(offset, end);
            self.persist.notify_one();
            self.outstanding = self.outstanding.saturating_sub(1);
            self.drain();
        }
    }

    fn on_message(&mut self, p: rumqttc::v5::mqttbytes::v5::Publish) {
        let Ok(topic) = std::str::from_utf8(&p.topic) else {
            return;
        };
        if self.rebirth_topic.as_deref() == Some(topic) {
            if p.payload.trim_ascii() == b"online" && self.ready {
                log::info!("mqtt: {topic} says online: publishing the retained messages again");
                for r in self.retained.clone() {
                    self.publish(&r, Tag::Plain);
                }
            }
            return;
        }
        let Some(verb) = self.topics.command_verb(topic) else {
            return;
        };
        let fleet = self.topics.is_fleet(topic);
        let (response_topic, correlation, message_expiry_s) = match p.properties {
            Some(props) => (
                props.response_topic.filter(|t| usable_response_topic(t)),
                props.correlation_data,
                props.message_expiry_interval,
            ),
            None => (None, None, None),
        };
        let cmd = FromLink::Command {
            verb: verb.to_string(),
            payload: p.payload,
            response_topic,
            correlation,
            fleet,
            retained: p.retain,
            message_expiry_s,
        };
        if let Err(mpsc::error::TrySendError::Full(FromLink::Command { payload, .. })) =
            self.up.try_send(cmd)
        {
            // Never silently: the sender hears `busy`, the count goes in the log and
            // in `status-get`.
            let n = self.stats.commands_busy.fetch_add(1, Ordering::Relaxed) + 1;
            let rid = messages::peek_request_id(&payload);
            if n.is_power_of_two() || n.is_multiple_of(1000) {
                log::warn!(
                    "mqtt: command on {topic} answered busy: the daemon is not keeping up ({n} so far)"
                );
            }
            let r = Reply::new(
                rid.as_deref(),
                Code::Busy,
                "too many commands at once; this one was not read (try again with a new request_id)",
            )
            .with("verb", verb);
            let o = Outbound::new(
                self.topics.reply(),
                r.to_json(&self.device_id, now_ms()),
                QoS::AtLeastOnce,
                false,
            );
            if self.ready {
                self.publish_or_hold(o);
            }
        }
    }

    /// Publishes a non-retained message (a reply), or holds it while rumqttc's
    /// queue is full; beyond [`HELD_MAX`] it is dropped, counted and logged.
    fn publish_or_hold(&mut self, o: Outbound) {
        if self.held.is_empty() {
            match self.publish(&o, Tag::Plain) {
                Sent::Queued | Sent::NotConnected => return,
                Sent::TooLarge(size) => return self.too_large(&o, size),
                Sent::Full => {}
            }
        }
        if self.held.len() < HELD_MAX {
            self.held.push_back(o);
            return;
        }
        let n = self.stats.replies_dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_power_of_two() || n.is_multiple_of(1000) {
            log::warn!(
                "mqtt: dropped a message to {}: {HELD_MAX} already wait for the broker ({n} dropped so far)",
                o.topic
            );
        }
    }

    /// A message (not a record) larger than the broker takes: not sent, logged.
    fn too_large(&self, o: &Outbound, size: usize) {
        log::error!(
            "mqtt: a message to {} is {size} bytes, above the broker's maximum packet size ({}); not sent",
            o.topic,
            self.max_packet.unwrap_or_default()
        );
    }

    /// Publishes held messages while rumqttc takes them.
    fn flush_held(&mut self) {
        while let Some(o) = self.held.pop_front() {
            match self.publish(&o, Tag::Plain) {
                Sent::Queued => {}
                Sent::TooLarge(size) => self.too_large(&o, size),
                Sent::Full => {
                    self.held.push_front(o);
                    return;
                }
                Sent::NotConnected => {
                    self.drop_held();
                    return;
                }
            }
        }
    }

    /// The connection went: held replies are not sent later (counted).
    fn drop_held(&mut self) {
        let n = self.held.len() as u64;
        if n > 0 {
            self.held.clear();
            let total = self.stats.replies_dropped.fetch_add(n, Ordering::Relaxed) + n;
            log::warn!("mqtt: {n} replies dropped with the connection ({total} so far)");
        }
    }

    /// Puts a record the broker refused into the dead-letter file, moves the store
    /// past it and queues an error reply (published after the reconnect).
    fn dead_letter(&mut self, offset: u64, end: u64, reason: &str) {
        let line = match self.store.read_from(offset, 1) {
            Ok(v) => v.into_iter().find(|r| r.offset == offset).map(|r| r.line),
            Err(e) => {
                log::error!("store: cannot read the refused record at {offset}: {e:#}");
                None
            }
        };
        let Some(line) = line else { return };
        self.dead_letter_line(offset, end, &line, reason);
    }

    /// [`Core::dead_letter`] with the record's line at hand.
    fn dead_letter_line(&mut self, offset: u64, end: u64, line: &str, reason: &str) {
        let topic = match record_kind(line) {
            Some("summary") => self.topics.summary(),
            _ => self.topics.result(),
        };
        let run_id = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v["run_id"].as_str().map(str::to_string));
        if let Err(e) = self.dead_letters.add(now_ms(), &topic, reason, line) {
            // Without a dead-letter copy the record stays in the queue (retried).
            log::error!("mqtt: the broker refused a record ({reason}) and {e:#}; it stays queued");
            return;
        }
        self.store.ack(offset, end);
        self.persist.notify_one();
        let what = run_id.as_deref().unwrap_or("a record");
        log::error!(
            "mqtt: the broker refused {what} on {topic} ({reason}); kept in {}",
            self.dead_letters.path().display()
        );
        let mut r = Reply::new(
            None,
            Code::PublishRefused,
            format!(
                "the broker refused {what} on {topic} ({reason}); kept in the dead-letter file {}",
                deadletter::FILE
            ),
        )
        .with("topic", topic)
        .with("reason", reason)
        .with(
            "dead_letters",
            self.dead_letters.count.load(Ordering::Relaxed),
        );
        if let Some(id) = run_id {
            r = r.with("run_id", id);
        }
        if self.notices.len() < 16 {
            self.notices.push(Outbound::new(
                self.topics.reply(),
                r.to_json(&self.device_id, now_ms()),
                QoS::AtLeastOnce,
                false,
            ));
        }
    }

    fn on_request(&mut self, m: ToLink) {
        match m {
            ToLink::Publish(o) => {
                if self.ready {
                    self.publish_or_hold(o);
                }
            }
            ToLink::Retained(o) => {
                if self.ready {
                    if let Sent::TooLarge(size) = self.publish(&o, Tag::Plain) {
                        self.too_large(&o, size);
                    }
                }
                match self.retained.iter_mut().find(|r| r.topic == o.topic) {
                    Some(r) => *r = o,
                    None => self.retained.push(o),
                }
            }
            ToLink::RecordsAvailable => self.drain(),
            ToLink::Shutdown { .. } => {}
        }
    }

    /// Publishes stored records from `next_send` while the window has room.
    fn drain(&mut self) {
        while self.ready && self.outstanding < WINDOW {
            let recs = match self
                .store
                .read_from(self.next_send, WINDOW - self.outstanding)
            {
                Ok(r) => r,
                Err(e) => {
                    log::error!("store: cannot read records to publish: {e:#}");
                    return;
                }
            };
            if recs.is_empty() {
                return;
            }
            for r in recs {
                let topic = match record_kind(&r.line) {
                    Some("result") => self.topics.result(),
                    Some("summary") => self.topics.summary(),
                    _ => {
                        log::error!(
                            "store: skipping a line that is not a record at offset {} in {}",
                            r.offset,
                            self.store.dir().display()
                        );
                        self.store.ack(r.offset, r.end);
                        self.next_send = r.end;
                        continue;
                    }
                };
                let o = Outbound::new(topic, r.line.into_bytes(), QoS::AtLeastOnce, false);
                let tag = Tag::Record {
                    offset: r.offset,
                    end: r.end,
                };
                match self.publish(&o, tag) {
                    Sent::Queued => {
                        self.next_send = r.end;
                        self.outstanding += 1;
                    }
                    Sent::TooLarge(size) => {
                        let line = String::from_utf8_lossy(&o.payload).into_owned();
                        let reason = format!(
                            "PacketTooLarge ({size} bytes, the broker's maximum is {})",
                            self.max_packet.unwrap_or_default()
                        );
                        self.next_send = r.end;
                        self.dead_letter_line(r.offset, r.end, &line, &reason);
                        for n in std::mem::take(&mut self.notices) {
                            self.publish_or_hold(n);
                        }
                    }
                    Sent::Full => {
                        self.blocked = true;
                        return;
                    }
                    Sent::NotConnected => return,
                }
            }
        }
    }

    /// Delivers what it can within `grace`, publishes `offline`, disconnects.
    async fn shutdown(
        &mut self,
        grace: Duration,
        polled: &mut mpsc::UnboundedReceiver<Polled>,
        poller: JoinHandle<()>,
        persister: JoinHandle<()>,
    ) {
        let start = tokio::time::Instant::now();
        let deadline = start + grace;
        // Every step below ends by `hard`, inside the handle's outer wait.
        let hard = deadline + SHUTDOWN_STEPS;
        // Let outstanding results be acknowledged (and queued ones go out).
        while self.ready && (self.outstanding > 0 || self.next_send < self.store.end()) {
            match tokio::time::timeout_at(deadline, polled.recv()).await {
                Ok(Some(ev)) => self.on_polled(ev).await,
                _ => break,
            }
        }
        if self.ready {
            let offline = Outbound::new(self.topics.status(), "offline", QoS::AtLeastOnce, true);
            if let Sent::Queued = self.publish(&offline, Tag::Offline) {
                let until = (tokio::time::Instant::now() + Duration::from_millis(1500))
                    .min(hard - Duration::from_millis(700));
                loop {
                    match tokio::time::timeout_at(until, polled.recv()).await {
                        Ok(Some(Polled::Acked(Tag::Offline))) => break,
                        Ok(Some(ev)) => self.on_polled(ev).await,
                        _ => {
                            log::warn!("mqtt: `offline` not acknowledged before shutdown");
                            break;
                        }
                    }
                }
            }
            let _ = self.client.try_disconnect();
            if tokio::time::timeout_at(hard - Duration::from_millis(200), poller)
                .await
                .is_err()
            {
                log::warn!("mqtt: no clean DISCONNECT before shutdown; connection dropped");
            }
        } else {
            poller.abort();
        }
        persister.abort();
        let s = self.store.clone();
        match tokio::task::spawn_blocking(move || s.persist_cursor()).await {
            Ok(Err(e)) => log::error!("store: cannot write the cursor: {e:#}"),
            Err(e) => log::error!("store: cursor writer failed: {e}"),
            Ok(Ok(_)) => {}
        }
    }
}

/// The `record` field of a stored line.
fn record_kind(line: &str) -> Option<&'static str> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    match v.get("record")?.as_str()? {
        "result" => Some("result"),
        "summary" => Some("summary"),
        _ => None,
    }
}

/// A response topic we are willing to publish to: no wildcards, and never a
/// command topic (a reply there would be read as a command by another board).
pub fn usable_response_topic(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 512
        && !t.contains(['#', '+', '\0'])
        && !t.split('/').any(|level| level == "cmd")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MqttConfig;

    fn topics() -> Topics {
        Topics::new("edgebench/v1", "dev").unwrap()
    }

    #[test]
    fn finds_and_sets_nodelay_on_connections_to_a_port() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        assert!(!c.nodelay().unwrap());
        assert_eq!(nodelay_to(port), 1);
        assert!(c.nodelay().unwrap());
        // The listener's accepted side has a different peer port: untouched.
        let (a, _) = l.accept().unwrap();
        assert!(!a.nodelay().unwrap());
    }

    #[test]
    fn response_topics_that_could_loop_are_refused() {
        assert!(usable_response_topic("app/replies/42"));
        assert!(!usable_response_topic("edgebench/v1/other/cmd/sweep-start"));
        assert!(!usable_response_topic("a/#"));
        assert!(!usable_response_topic(""));
    }

    #[test]
    fn record_kinds() {
        assert_eq!(record_kind(r#"{"record":"result","x":1}"#), Some("result"));
        assert_eq!(record_kind(r#"{"record":"summary"}"#), Some("summary"));
        assert_eq!(record_kind(r#"{"record":"other"}"#), None);
        assert_eq!(record_kind("\0\0\0"), None);
    }

    #[test]
    fn settings_check_credentials_and_tls_files() {
        let d = tempfile::tempdir().unwrap();
        let pw = d.path().join("pw");
        std::fs::write(&pw, "s3cret\n").unwrap();
        assert_eq!(read_secret(&pw).unwrap(), "s3cret");

        let mut m = MqttConfig {
            host: "localhost".into(),
            ..Default::default()
        };
        assert!(LinkSettings::from_config(&m, "dev", &topics(), None).is_ok());
        m.password_file = pw.display().to_string();
        let e = LinkSettings::from_config(&m, "dev", &topics(), None).unwrap_err();
        assert!(format!("{e:#}").contains("mqtt.username"), "{e:#}");
        m.username = "u".into();
        // Readable by others: refused, like ssh does.
        let e = format!(
            "{:#}",
            LinkSettings::from_config(&m, "dev", &topics(), None).unwrap_err()
        );
        assert!(
            e.contains("mqtt.password_file") && e.contains("chmod 600"),
            "{e}"
        );
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
        // A password without TLS: refused unless allowed.
        let e = format!(
            "{:#}",
            LinkSettings::from_config(&m, "dev", &topics(), None).unwrap_err()
        );
        assert!(e.contains("allow_plaintext_password"), "{e}");
        m.allow_plaintext_password = true;
        let s = LinkSettings::from_config(&m, "dev", &topics(), None).unwrap();
        assert_eq!(
            s.options.credentials(),
            Some(("u".to_string(), "s3cret".to_string()))
        );
        m.password_file = d.path().join("missing").display().to_string();
        let e = format!(
            "{:#}",
            LinkSettings::from_config(&m, "dev", &topics(), None).unwrap_err()
        );
        assert!(
            e.contains("mqtt.password_file") && e.contains("missing"),
            "{e}"
        );
        m.password_file.clear();
        // Client id from the device id and the machine hash; a persistent session.
        let s = LinkSettings::from_config(&m, "dev", &topics(), Some("abcd1234")).unwrap();
        assert_eq!(s.options.client_id(), "edgebench-dev-abcd1234");
        assert!(!s.options.clean_start());
        assert_eq!(
            s.options
                .connect_properties()
                .and_then(|p| p.session_expiry_interval),
            Some(86_400)
        );
        m.tls.cert_file = "c.pem".into();
        let e = format!(
            "{:#}",
            LinkSettings::from_config(&m, "dev", &topics(), None).unwrap_err()
        );
        assert!(e.contains("ca_file"), "{e}");
        m.tls.ca_file = d.path().join("none.pem").display().to_string();
        let e = format!(
            "{:#}",
            LinkSettings::from_config(&m, "dev", &topics(), None).unwrap_err()
        );
        assert!(e.contains("mqtt.tls.ca_file"), "{e}");
    }
}
