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

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::{Filter, LastWill, Packet, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions};
use rumqttc::{Outgoing, Transport};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;

use super::backoff::Backoff;
use super::topics::Topics;
use crate::bench::result::now_ms;
use crate::config::MqttConfig;
use crate::store::Store;

/// Results published but not yet acknowledged, at most (below mosquitto's default
/// receive maximum of 20, so rumqttc never has to hold one back).
const WINDOW: usize = 16;
/// Requests rumqttc may hold in its channel.
const REQUEST_CAPACITY: usize = 64;
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
}

impl std::fmt::Debug for LinkSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkSettings")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl LinkSettings {
    /// Builds the rumqttc options from `[mqtt]`: Last Will `offline` (retained),
    /// credentials (password from `password_file`), TLS from `tls.*`, packet size.
    /// Errors name the key and the file.
    pub fn from_config(m: &MqttConfig, device_id: &str, topics: &Topics) -> Result<LinkSettings> {
        if m.host.is_empty() {
            bail!("mqtt.host is empty (MQTT is off)");
        }
        let mut o = MqttOptions::new(format!("edgebench-{device_id}"), &m.host, m.port);
        o.set_keep_alive(Duration::from_secs(m.keepalive_s.clamp(5, 3600)));
        o.set_clean_start(true);
        o.set_connection_timeout(10);
        o.set_max_packet_size(Some(MAX_INCOMING_PACKET));
        o.set_last_will(LastWill::new(
            topics.status(),
            "offline",
            QoS::AtLeastOnce,
            true,
            None,
        ));
        if !m.password_file.is_empty() && m.username.is_empty() {
            bail!("mqtt.password_file is set but mqtt.username is empty");
        }
        if !m.username.is_empty() {
            let password = if m.password_file.is_empty() {
                String::new()
            } else {
                read_secret(Path::new(&m.password_file)).context("mqtt.password_file")?
            };
            o.set_credentials(&m.username, password);
        }
        let t = &m.tls;
        if !t.ca_file.is_empty() {
            let ca = std::fs::read(&t.ca_file)
                .with_context(|| format!("mqtt.tls.ca_file: cannot read {}", t.ca_file))?;
            let client = match (t.cert_file.is_empty(), t.key_file.is_empty()) {
                (true, true) => None,
                (false, false) => Some((
                    std::fs::read(&t.cert_file).with_context(|| {
                        format!("mqtt.tls.cert_file: cannot read {}", t.cert_file)
                    })?,
                    std::fs::read(&t.key_file).with_context(|| {
                        format!("mqtt.tls.key_file: cannot read {}", t.key_file)
                    })?,
                )),
                _ => bail!(
                    "mqtt.tls.cert_file and mqtt.tls.key_file go together: set both or neither"
                ),
            };
            o.set_transport(Transport::tls(ca, client, None));
        } else if !t.cert_file.is_empty() || !t.key_file.is_empty() {
            bail!("mqtt.tls.cert_file / key_file need mqtt.tls.ca_file (which turns TLS on)");
        }
        Ok(LinkSettings {
            options: o,
            backoff_min: Duration::from_secs_f64(m.backoff_min_s),
            backoff_max: Duration::from_secs_f64(m.backoff_max_s),
            address: format!("{}:{}", m.host, m.port),
        })
    }
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

/// Events from the link.
#[derive(Debug)]
pub enum FromLink {
    Connected,
    Disconnected(String),
    /// A message on a command topic.
    Command {
        verb: String,
        payload: Bytes,
        /// MQTT 5 response topic, when the sender gave a usable one.
        response_topic: Option<String>,
        correlation: Option<Bytes>,
    },
}

/// Handle of a running link.
pub struct LinkHandle {
    pub tx: mpsc::Sender<ToLink>,
    task: JoinHandle<()>,
    /// Unix ms of the core's last loop turn (for the watchdog).
    pub heartbeat: Arc<AtomicI64>,
}

impl LinkHandle {
    /// Runs the shutdown sequence and waits for it (bounded by `grace` plus a margin).
    pub async fn shutdown(self, grace: Duration) {
        let (done, rx) = oneshot::channel();
        if self.tx.send(ToLink::Shutdown { grace, done }).await.is_ok() {
            let _ = tokio::time::timeout(grace + Duration::from_secs(3), rx).await;
        }
        self.task.abort();
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
    ConnAck,
    Message(rumqttc::v5::mqttbytes::v5::Publish),
    Acked(Tag),
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
    let (up_tx, up_rx) = mpsc::channel(64);
    let heartbeat = Arc::new(AtomicI64::new(now_ms()));
    let persist = Arc::new(Notify::new());
    let persister = tokio::spawn(persist_cursor(store.clone(), persist.clone()));
    let core = Core {
        client,
        tracker,
        topics,
        store,
        up: up_tx,
        retained: Vec::new(),
        ready: false,
        next_send: 0,
        outstanding: 0,
        blocked: false,
        persist,
        heartbeat: heartbeat.clone(),
    };
    let task = tokio::spawn(core.run(rx, polled_rx, poller, persister));
    (
        LinkHandle {
            tx,
            task,
            heartbeat,
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
                let _ = tx.send(Polled::ConnAck);
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
                {
                    // Forget rumqttc's replay queue (and anything queued meanwhile):
                    // the store replays results after the next ConnAck.
                    let mut t = lock(&tracker);
                    eventloop.clean();
                    eventloop.pending.clear();
                    t.reset(false);
                }
                let delay = backoff.next_delay();
                let why = describe(&e);
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
}

struct Core {
    client: AsyncClient,
    tracker: Arc<Mutex<Tracker>>,
    topics: Topics,
    store: Arc<Store>,
    up: mpsc::Sender<FromLink>,
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
        let res = match &o.correlation {
            Some(c) => self.client.try_publish_with_properties(
                o.topic.clone(),
                o.qos,
                o.retain,
                o.payload.clone(),
                PublishProperties {
                    correlation_data: Some(c.clone()),
                    ..Default::default()
                },
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
            Polled::ConnAck => {
                self.ready = false;
                let online = Outbound::new(self.topics.status(), "online", QoS::AtLeastOnce, true);
                if !matches!(self.publish(&online, Tag::Plain), Sent::Queued) {
                    return;
                }
                let filters = self
                    .topics
                    .command_filters()
                    .map(|f| Filter::new(f, QoS::AtLeastOnce));
                if let Err(e) = self.client.try_subscribe_many(filters) {
                    log::warn!("mqtt: cannot queue the subscription: {e}");
                    return;
                }
                for r in self.retained.clone() {
                    self.publish(&r, Tag::Plain);
                }
                self.ready = true;
                self.next_send = self.store.cursor();
                self.outstanding = 0;
                let _ = self.up.try_send(FromLink::Connected);
                self.drain();
            }
            Polled::Disconnected(why) => {
                if self.ready {
                    let _ = self.up.try_send(FromLink::Disconnected(why));
                }
                self.ready = false;
                self.outstanding = 0;
            }
            Polled::Acked(Tag::Record { offset, end }) => {
                self.store.ack(offset, end);
                self.persist.notify_one();
                self.outstanding = self.outstanding.saturating_sub(1);
                self.drain();
            }
            Polled::Acked(_) => {}
            Polled::Message(p) => self.on_message(p),
        }
    }

    fn on_message(&mut self, p: rumqttc::v5::mqttbytes::v5::Publish) {
        let Ok(topic) = std::str::from_utf8(&p.topic) else {
            return;
        };
        let Some(verb) = self.topics.command_verb(topic) else {
            return;
        };
        let (response_topic, correlation) = match p.properties {
            Some(props) => (
                props.response_topic.filter(|t| usable_response_topic(t)),
                props.correlation_data,
            ),
            None => (None, None),
        };
        let cmd = FromLink::Command {
            verb: verb.to_string(),
            payload: p.payload,
            response_topic,
            correlation,
        };
        if self.up.try_send(cmd).is_err() {
            log::warn!("mqtt: command on {topic} dropped: the daemon is not keeping up");
        }
    }

    fn on_request(&mut self, m: ToLink) {
        match m {
            ToLink::Publish(o) => {
                if self.ready {
                    if let Sent::Full = self.publish(&o, Tag::Plain) {
                        log::warn!("mqtt: dropped a message to {}: queue full", o.topic);
                    }
                }
            }
            ToLink::Retained(o) => {
                if self.ready {
                    self.publish(&o, Tag::Plain);
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
        let deadline = tokio::time::Instant::now() + grace;
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
                let until = tokio::time::Instant::now() + Duration::from_secs(2);
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
            let _ = tokio::time::timeout(Duration::from_secs(2), poller).await;
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
        assert!(LinkSettings::from_config(&m, "dev", &topics()).is_ok());
        m.password_file = pw.display().to_string();
        let e = LinkSettings::from_config(&m, "dev", &topics()).unwrap_err();
        assert!(format!("{e:#}").contains("mqtt.username"), "{e:#}");
        m.username = "u".into();
        let s = LinkSettings::from_config(&m, "dev", &topics()).unwrap();
        assert_eq!(
            s.options.credentials(),
            Some(("u".to_string(), "s3cret".to_string()))
        );
        m.password_file = d.path().join("missing").display().to_string();
        let e = format!(
            "{:#}",
            LinkSettings::from_config(&m, "dev", &topics()).unwrap_err()
        );
        assert!(
            e.contains("mqtt.password_file") && e.contains("missing"),
            "{e}"
        );
        m.password_file.clear();
        m.tls.cert_file = "c.pem".into();
        let e = format!(
            "{:#}",
            LinkSettings::from_config(&m, "dev", &topics()).unwrap_err()
        );
        assert!(e.contains("ca_file"), "{e}");
        m.tls.ca_file = d.path().join("none.pem").display().to_string();
        let e = format!(
            "{:#}",
            LinkSettings::from_config(&m, "dev", &topics()).unwrap_err()
        );
        assert!(e.contains("mqtt.tls.ca_file"), "{e}");
    }
}
