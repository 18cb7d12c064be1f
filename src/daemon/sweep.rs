//! The sweep thread: runs one plan with the runner, appending every record to the
//! store (synced) before the link may publish it, and keeping the sweep journal.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{bail, Context, Result};
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
    /// What the thread is doing, for the daemon's hang check.
    pub watch: Arc<Watch>,
}

/// The sweep thread's position, shared with the daemon so that a configuration that
/// never returns (a wedged accelerator) can be given up on.
///
/// The daemon reads `started_ms` (an atomic, no lock on the runtime); giving up
/// ([`Watch::abandon`]) happens off the runtime under `state`, the same lock the
/// sink holds while storing a result, so exactly one of the real result and the
/// stand-in record is stored. Once abandoned, the thread stores nothing, writes no
/// journal and sends no event, even if its call returns one day.
#[derive(Debug, Default)]
pub struct Watch {
    /// Unix ms when the running configuration started (0: none running).
    pub started_ms: AtomicI64,
    state: Mutex<WatchState>,
}

#[derive(Debug, Default)]
struct WatchState {
    current: Option<JournalConfig>,
    started_ms: i64,
    abandoned: bool,
}

impl Watch {
    fn lock(&self) -> MutexGuard<'_, WatchState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn abandoned(&self) -> bool {
        self.lock().abandoned
    }

    /// Gives up on the configuration that started at `started_ms` if it is still the
    /// running one: marks the thread abandoned and stores `record(config)` in its
    /// place. Blocking (store append): call it off the runtime. Returns the
    /// configuration given up on, or None when it finished meanwhile.
    pub fn abandon(
        &self,
        started_ms: i64,
        store: &Store,
        record: impl FnOnce(&JournalConfig) -> String,
    ) -> Result<Option<JournalConfig>> {
        let mut st = self.lock();
        if st.abandoned || st.started_ms != started_ms {
            return Ok(None);
        }
        let Some(c) = st.current.clone() else {
            return Ok(None);
        };
        st.abandoned = true;
        self.started_ms.store(0, Ordering::Relaxed);
        if let Err(e) = store.append(&record(&c)) {
            log::error!("cannot store the record of the configuration given up on: {e:#}");
        }
        Ok(Some(c))
    }
}

/// Starts `plan` from configuration `first` on its own thread.
pub fn start(
    cfg: Arc<Config>,
    zoo: Arc<Zoo>,
    plan: Arc<Plan>,
    first: usize,
    request_id: Option<String>,
    store: Arc<Store>,
    tx: UnboundedSender<SweepEvent>,
) -> Result<SweepThread> {
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    let watch = Arc::new(Watch::default());
    let w = watch.clone();
    let handle = std::thread::Builder::new()
        .name("sweep".into())
        .spawn(move || {
            let sweep_id = plan.sweep_id.clone();
            let outcome = run(&cfg, &zoo, &plan, first, request_id, &store, &tx, &flag, &w)
                .map_err(|e| format!("{e:#}"));
            if w.abandoned() {
                log::warn!(
                    "sweep {sweep_id}: a configuration given up on returned after all; its outcome is discarded"
                );
                return;
            }
            if let Err(e) = store.clear_journal() {
                log::error!("store: {e:#}");
            }
            let _ = tx.send(SweepEvent::Finished { sweep_id, outcome });
        })
        .context("cannot start the sweep thread")?;
    Ok(SweepThread {
        cancel,
        handle,
        watch,
    })
}

#[allow(clippy::too_many_arguments)]
fn run(
    cfg: &Config,
    zoo: &Zoo,
    plan: &Plan,
    first: usize,
    request_id: Option<String>,
    store: &Arc<Store>,
    tx: &UnboundedSender<SweepEvent>,
    cancel: &AtomicBool,
    watch: &Arc<Watch>,
) -> Result<SweepOutcome> {
    let journal = SweepJournal {
        sweep: plan.sweep.clone(),
        sweep_id: plan.sweep_id.clone(),
        request_id,
        started_ms: now_ms(),
        done: first,
        total: plan.configs.len(),
        current: None,
        next: None,
        store_end: store.end(),
    };
    if let Err(e) = store.write_journal(&journal) {
        let what = if crate::store::is_enospc(&e) {
            "store full: cannot write the sweep journal"
        } else {
            "cannot write the sweep journal"
        };
        return Err(e.context(what));
    }
    let configs: Vec<JournalConfig> = plan
        .configs
        .iter()
        .enumerate()
        .map(|(index, c)| JournalConfig {
            index,
            config: None,
            model: c.model.clone(),
            precision: c.precision.clone(),
            backend: c.backend.clone(),
            ep: c.ep.clone(),
            batch: c.batch,
            threads: c.threads,
        })
        .collect();
    let mut sink = StoreSink {
        store: store.clone(),
        tx: tx.clone(),
        journal,
        configs,
        search: plan.batch_search.is_some(),
        watch: watch.clone(),
    };
    runner::run_sweep_from(cfg, zoo, plan, first, &mut sink, cancel)
}

/// Appends each record to the store (synced), then tells the daemon.
struct StoreSink {
    store: Arc<Store>,
    tx: UnboundedSender<SweepEvent>,
    journal: SweepJournal,
    configs: Vec<JournalConfig>,
    /// A knee search: points are numbered apart from the plan, and the next point
    /// is the search's to pick.
    search: bool,
    watch: Arc<Watch>,
}

impl RecordSink for StoreSink {
    fn record(&mut self, rec: &Record) -> Result<()> {
        let mut st = self.watch.lock();
        if st.abandoned {
            bail!("the daemon gave up on this sweep thread");
        }
        self.store
            .append(&rec.to_json())
            .context("cannot store a measured record")?;
        if matches!(rec, Record::Result(_)) {
            st.current = None;
            st.started_ms = 0;
            self.watch.started_ms.store(0, Ordering::Relaxed);
        }
        drop(st);
        let _ = self.tx.send(SweepEvent::Stored);
        Ok(())
    }

    fn progress(&mut self, p: &Progress) {
        let mut st = self.watch.lock();
        if st.abandoned {
            return;
        }
        self.journal.done = p.done;
        let at = p.config.and_then(|i| self.configs.get(i));
        self.journal.current = at.map(|c| {
            if self.search {
                JournalConfig {
                    index: p.done,
                    config: Some(c.index),
                    batch: p.batch,
                    ..c.clone()
                }
            } else {
                c.clone()
            }
        });
        self.journal.next = match (self.search, p.config) {
            (false, Some(i)) => self.configs.get(i + 1).cloned(),
            _ => None,
        };
        self.journal.store_end = self.store.end();
        st.current = self.journal.current.clone();
        st.started_ms = if st.current.is_some() { now_ms() } else { 0 };
        self.watch
            .started_ms
            .store(st.started_ms, Ordering::Relaxed);
        if let Err(e) = self.store.write_journal(&self.journal) {
            log::error!("store: cannot update the sweep journal: {e:#}");
        }
        drop(st);
        let _ = self.tx.send(SweepEvent::Progress {
            sweep_id: self.journal.sweep_id.clone(),
            progress: p.clone(),
        });
    }
}
