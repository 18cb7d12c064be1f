//! The writer: the one owner of the store connection. It takes messages from the MQTT
//! side, writes them in batches (one transaction per batch, at most `batch_size`
//! messages or `flush_interval_ms` after the first one) and only then hands them back
//! for acknowledgement. When the store is unavailable it keeps the batch, waits with
//! backoff and retries: nothing is acknowledged meanwhile, so the broker keeps (and
//! after a crash redelivers) every message not yet committed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::v5::mqttbytes::v5::Publish;

use super::config::CollectConfig;
use crate::bench::result::now_ms;
use crate::fleet::ingest::{self, Limits, Reject, Row};
use crate::fleet::store::{Store, StoreError};
use crate::mqtt::backoff::Backoff;

/// A message from the broker, with the connection it arrived on.
#[derive(Debug)]
pub struct Incoming {
    pub publish: Publish,
    /// Connection generation (acknowledgements of an older connection are not sent).
    pub generation: u64,
}

/// Messages committed, to acknowledge.
#[derive(Debug)]
pub struct Committed {
    pub generation: u64,
    pub publishes: Vec<Publish>,
}

/// Counters, shared with the MQTT side for its status line.
#[derive(Debug, Default)]
pub struct Stats {
    pub received: AtomicU64,
    pub stored: AtomicU64,
    pub duplicates: AtomicU64,
    pub rejected: AtomicU64,
    pub batches: AtomicU64,
    pub store_errors: AtomicU64,
}

/// What the writer needs besides its store.
pub struct Writer {
    pub store: Box<dyn Store>,
    pub cfg: CollectConfig,
    pub prefix: String,
    pub stats: Arc<Stats>,
    pub stop: Arc<AtomicBool>,
    /// Rejection kinds already logged (each is logged once, with its topic).
    logged: HashMap<&'static str, u64>,
    last_prune: Option<Instant>,
    rejects_since_prune: u64,
}

/// How often telemetry retention and the rejects bound are applied.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

impl Writer {
    pub fn new(
        store: Box<dyn Store>,
        cfg: CollectConfig,
        prefix: String,
        stats: Arc<Stats>,
        stop: Arc<AtomicBool>,
    ) -> Writer {
        Writer {
            store,
            cfg,
            prefix,
            stats,
            stop,
            logged: HashMap::new(),
            last_prune: None,
            rejects_since_prune: 0,
        }
    }

    /// Runs until `rx` closes (the MQTT side ended) or `stop` is set while the store is
    /// unavailable. Committed batches go to `ack`.
    pub fn run(
        mut self,
        rx: Receiver<Incoming>,
        ack: tokio::sync::mpsc::UnboundedSender<Committed>,
    ) {
        let flush_after = Duration::from_millis(self.cfg.flush_interval_ms);
        let mut batch: Vec<Incoming> = Vec::with_capacity(self.cfg.batch_size);
        let mut first: Option<Instant> = None;
        loop {
            let wait = match first {
                Some(t) => flush_after.saturating_sub(t.elapsed()),
                None => Duration::from_secs(1),
            };
            let closed = match rx.recv_timeout(wait) {
                Ok(m) => {
                    if batch.is_empty() {
                        first = Some(Instant::now());
                    }
                    batch.push(m);
                    // Take what is already queued without waiting.
                    while batch.len() < self.cfg.batch_size {
                        match rx.try_recv() {
                            Ok(m) => batch.push(m),
                            Err(_) => break,
                        }
                    }
                    false
                }
                Err(RecvTimeoutError::Timeout) => false,
                Err(RecvTimeoutError::Disconnected) => true,
            };
            let due = first.is_some_and(|t| t.elapsed() >= flush_after);
            if !batch.is_empty() && (closed || due || batch.len() >= self.cfg.batch_size) {
                let Some(done) = self.write(std::mem::take(&mut batch)) else {
                    return; // stopping while the store is away: nothing acknowledged
                };
                first = None;
                for c in done {
                    let _ = ack.send(c);
                }
            }
            if closed {
                return;
            }
            // A flood of bad messages is pruned sooner, so `rejects` stays bounded.
            let flood = self.rejects_since_prune > (self.cfg.rejects_max / 10).max(100);
            if flood || self.last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
                self.prune();
            }
        }
    }

    fn prune(&mut self) {
        self.last_prune = Some(Instant::now());
        self.rejects_since_prune = 0;
        let before = (self.cfg.telemetry_retention_days > 0)
            .then(|| now_ms() - i64::from(self.cfg.telemetry_retention_days) * 86_400_000);
        match self.store.prune(before, self.cfg.rejects_max) {
            Ok((t, r)) if t + r > 0 => {
                log::info!("collect: pruned {t} telemetry rows (retention), {r} old rejects")
            }
            Ok(_) => {}
            Err(e) => log::warn!("collect: pruning failed: {e}"),
        }
    }

    /// Maps and writes one batch; the committed messages by connection. `None` when
    /// asked to stop before the store came back.
    fn write(&mut self, batch: Vec<Incoming>) -> Option<Vec<Committed>> {
        let now = now_ms();
        let limits = Limits {
            max_payload_bytes: self.cfg.max_payload_bytes,
        };
        self.stats
            .received
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        // Rows per message (a message's rows are stored or rejected together).
        let mut per_msg: Vec<Vec<Row>> = Vec::with_capacity(batch.len());
        for m in &batch {
            let topic = String::from_utf8_lossy(&m.publish.topic);
            let rows =
                match ingest::from_message(&self.prefix, &topic, &m.publish.payload, limits, now) {
                    Ok(rows) => rows,
                    Err(why) => {
                        self.note_reject(&topic, &why);
                        vec![ingest::reject_row(&topic, &why, &m.publish.payload, now)]
                    }
                };
            per_msg.push(rows);
        }
        let rows = merge_touches(&per_msg);
        let mut backoff = Backoff::new(
            Duration::from_millis(100),
            Duration::from_secs_f64(self.cfg.store_backoff_max_s),
            now as u64,
        );
        loop {
            match self.store.apply(&rows) {
                Ok(done) => {
                    self.count(&rows, &done);
                    if backoff.attempts() > 0 {
                        log::info!(
                            "collect: store {} is back; batch of {} messages written",
                            self.store.describe(),
                            batch.len()
                        );
                    }
                    break;
                }
                Err(StoreError::Rejected(e)) => {
                    // The database is there but refuses something in the batch: write
                    // message by message so one bad value costs only its own message.
                    log::warn!(
                        "collect: store refused a batch ({e}); writing it message by message"
                    );
                    if !self.write_one_by_one(&batch, per_msg, now, &mut backoff) {
                        return None;
                    }
                    break;
                }
                Err(StoreError::Unavailable(e)) => {
                    if !self.wait_for_store(&e, &mut backoff) {
                        return None;
                    }
                }
            }
        }
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        let mut out: Vec<Committed> = Vec::new();
        for m in batch {
            match out.last_mut() {
                Some(c) if c.generation == m.generation => c.publishes.push(m.publish),
                _ => out.push(Committed {
                    generation: m.generation,
                    publishes: vec![m.publish],
                }),
            }
        }
        Some(out)
    }

    fn write_one_by_one(
        &mut self,
        batch: &[Incoming],
        per_msg: Vec<Vec<Row>>,
        now: i64,
        backoff: &mut Backoff,
    ) -> bool {
        for (m, rows) in batch.iter().zip(per_msg) {
            loop {
                match self.store.apply(&rows) {
                    Ok(done) => {
                        self.count(&rows, &done);
                        break;
                    }
                    Err(StoreError::Rejected(e)) => {
                        let topic = String::from_utf8_lossy(&m.publish.topic);
                        let why = Reject::Type(format!("the store refused it: {e}"));
                        self.note_reject(&topic, &why);
                        let r = ingest::reject_row(&topic, &why, &m.publish.payload, now);
                        // A reject row that is refused too is dropped (it is logged).
                        let _ = self.store.apply(std::slice::from_ref(&r));
                        break;
                    }
                    Err(StoreError::Unavailable(e)) => {
                        if !self.wait_for_store(&e, backoff) {
                            return false;
                        }
                    }
                }
            }
        }
        true
    }

    /// Waits out one backoff step and reconnects; `false` when asked to stop.
    fn wait_for_store(&mut self, err: &str, backoff: &mut Backoff) -> bool {
        self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
        let delay = backoff.next_delay();
        log::warn!(
            "collect: store {} unavailable ({err}); not acknowledging, retrying in {:.1} s (attempt {})",
            self.store.describe(),
            delay.as_secs_f64(),
            backoff.attempts()
        );
        let end = Instant::now() + delay;
        while Instant::now() < end {
            if self.stop.load(Ordering::Relaxed) {
                log::warn!("collect: stopping with the store away; the broker keeps the unacknowledged messages");
                return false;
            }
            std::thread::sleep(Duration::from_millis(50).min(end - Instant::now()));
        }
        if let Err(e) = self.store.ping() {
            log::debug!("collect: store still away: {e}");
        }
        true
    }

    fn count(&self, rows: &[Row], done: &[bool]) {
        for (r, new) in rows.iter().zip(done) {
            match (r.table, new) {
                ("results" | "summaries" | "telemetry", true) => {
                    self.stats.stored.fetch_add(1, Ordering::Relaxed);
                }
                ("results" | "summaries" | "telemetry", false) => {
                    self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
    }

    fn note_reject(&mut self, topic: &str, why: &Reject) {
        self.stats.rejected.fetch_add(1, Ordering::Relaxed);
        self.rejects_since_prune += 1;
        let n = self.logged.entry(why.kind()).or_insert(0);
        *n += 1;
        if *n == 1 {
            log::warn!(
                "collect: rejected a message on {topic} ({}): {why} (further `{}` rejects are counted, not logged; see the rejects table)",
                why.kind(),
                why.kind()
            );
        }
    }
}

/// The batch's rows with the "last seen" touches of each device merged into one (the
/// latest, with the board when any message named it): a batch of 500 results from
/// one board updates its device row once, not 500 times.
fn merge_touches(per_msg: &[Vec<Row>]) -> Vec<Row> {
    let mut rows = Vec::with_capacity(per_msg.iter().map(Vec::len).sum());
    let mut touches: Vec<Row> = Vec::new();
    for r in per_msg.iter().flatten() {
        if !ingest::is_touch(r) {
            rows.push(r.clone());
            continue;
        }
        let dev = r.get("device_id");
        match touches.iter_mut().find(|t| t.get("device_id") == dev) {
            Some(t) => {
                let newer = match (r.get("time"), t.get("time")) {
                    (Some(ingest::Val::Time(a)), Some(ingest::Val::Time(b))) => a >= b,
                    _ => true,
                };
                if newer && (r.get("board").is_some() || t.get("board").is_none()) {
                    *t = r.clone();
                }
            }
            None => touches.push(r.clone()),
        }
    }
    rows.extend(touches);
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touches_of_one_device_merge_into_the_latest() {
        let per_msg = vec![
            vec![ingest::touch_row("a", Some("x86".into()), 5)],
            vec![ingest::touch_row("b", None, 6)],
            vec![ingest::touch_row("a", Some("x86".into()), 9)],
            vec![ingest::status_row("a", "online", 7)],
        ];
        let rows = merge_touches(&per_msg);
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rows[0].get("status"),
            Some(&ingest::Val::Text("online".into()))
        );
        assert_eq!(rows[1].get("time"), Some(&ingest::Val::Time(9)));
        assert_eq!(
            rows[2].get("device_id"),
            Some(&ingest::Val::Text("b".into()))
        );
    }
}
