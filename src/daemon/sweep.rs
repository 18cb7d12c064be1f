//! The sweep thread: runs one plan with the runner, appending every record to the
//! store (synced) before the link may publish it, and keeping the sweep journal.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::sync::mpsc::UnboundedSender;

use crate::bench::plan::Plan;
use crate::bench::result::{now_ms, Record};
use crate::bench::runner::{self, Progress, RecordSink, SweepOutcome};
use crate::config::Config;
use crate::models::Zoo;
use crate::store::{JournalConfig, Store, SweepJournal};

/// What the sweep thread tells the daemon.
#[derive(Debug)]
pub enum SweepEvent {
    Progress {
        sweep_id: String,
        progress: Progress,
    },
    /// A record is durable in the store.
    Stored,
    Finished {
        sweep_id: String,
        outcome: Result<SweepOutcome, String>,
    },
}

/// A running sweep thread.
pub struct SweepThread {
    pub cancel: Arc<AtomicBool>,
    pub handle: std::thread::JoinHandle<()>,
}

/// Starts `plan` on its own thread.
pub fn start(
    cfg: Arc<Config>,
    zoo: Arc<Zoo>,
    plan: Plan,
    request_id: Option<String>,
    store: Arc<Store>,
    tx: UnboundedSender<SweepEvent>,
) -> Result<SweepThread> {
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    let handle = std::thread::Builder::new()
        .name("sweep".into())
        .spawn(move || {
            let sweep_id = plan.sweep_id.clone();
            let outcome = run(&cfg, &zoo, &plan, request_id, &store, &tx, &flag)
                .map_err(|e| format!("{e:#}"));
            if let Err(e) = store.clear_journal() {
                log::error!("store: {e:#}");
            }
            let _ = tx.send(SweepEvent::Finished { sweep_id, outcome });
        })
        .context("cannot start the sweep thread")?;
    Ok(SweepThread { cancel, handle })
}

fn run(
    cfg: &Config,
    zoo: &Zoo,
    plan: &Plan,
    request_id: Option<String>,
    store: &Arc<Store>,
    tx: &UnboundedSender<SweepEvent>,
    cancel: &AtomicBool,
) -> Result<SweepOutcome> {
    let journal = SweepJournal {
        sweep: plan.sweep.clone(),
        sweep_id: plan.sweep_id.clone(),
        request_id,
        started_ms: now_ms(),
        done: 0,
        total: plan.configs.len(),
        current: None,
        next: None,
        store_end: store.end(),
    };
    store
        .write_journal(&journal)
        .context("cannot write the sweep journal")?;
    let configs: Vec<JournalConfig> = plan
        .configs
        .iter()
        .enumerate()
        .map(|(index, c)| JournalConfig {
            index,
            model: c.model.clone(),
            precision: c.precision.clone(),
            backend: c.backend.clone(),
            ep: c.ep.clone(),
            batch: c.batch,
            threads: c.threads,
        })
        .collect();
    let by_label = plan
        .configs
        .iter()
        .enumerate()
        .map(|(i, c)| (c.label(), i))
        .collect();
    let mut sink = StoreSink {
        store: store.clone(),
        tx: tx.clone(),
        journal,
        configs,
        by_label,
    };
    runner::run_sweep(cfg, zoo, plan, &mut sink, cancel)
}

/// Appends each record to the store (synced), then tells the daemon.
struct StoreSink {
    store: Arc<Store>,
    tx: UnboundedSender<SweepEvent>,
    journal: SweepJournal,
    configs: Vec<JournalConfig>,
    by_label: HashMap<String, usize>,
}

impl RecordSink for StoreSink {
    fn record(&mut self, rec: &Record) -> Result<()> {
        self.store
            .append(&rec.to_json())
            .context("cannot store a measured record")?;
        let _ = self.tx.send(SweepEvent::Stored);
        Ok(())
    }

    fn progress(&mut self, p: &Progress) {
        self.journal.done = p.done;
        let i = self.by_label.get(&p.current).copied();
        self.journal.current = i.and_then(|i| self.configs.get(i)).cloned();
        self.journal.next = i.and_then(|i| self.configs.get(i + 1)).cloned();
        self.journal.store_end = self.store.end();
        if let Err(e) = self.store.write_journal(&self.journal) {
            log::error!("store: cannot update the sweep journal: {e:#}");
        }
        let _ = self.tx.send(SweepEvent::Progress {
            sweep_id: self.journal.sweep_id.clone(),
            progress: p.clone(),
        });
    }
}
