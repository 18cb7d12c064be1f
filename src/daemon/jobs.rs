//! Sweep-thread wiring: scheduled sweeps, starting queued jobs, progress and
//! completion events from the sweep thread.

use std::sync::Arc;

use super::scheduler::{Admission, Job, Origin};
use super::setup::request;
use super::sweep::{self, SweepEvent};
use super::{Active, Daemon, Queued};
use crate::bench::plan;
use crate::bench::result::now_ms;
use crate::mqtt::link::ToLink;
use crate::mqtt::messages::{Code, Reply, SweepState};

impl Daemon {
    /// Queues the boot or timetable sweep.
    pub(super) async fn submit_scheduled(&mut self, origin: Origin, name: &str) {
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
    pub(super) async fn start_sweep(&mut self, mut job: Job<Queued>) {
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
        let total = job.payload.plan.max_points();
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
        let plan = Arc::new(job.payload.plan);
        match sweep::start(
            self.setup.cfg.clone(),
            self.setup.zoo.clone(),
            plan.clone(),
            0,
            request_id.clone(),
            self.store.clone(),
            self.sweep_tx.clone(),
        ) {
            Ok(thread) => {
                self.active = Some(Active {
                    thread,
                    sweep_id: job.sweep_id.clone(),
                    cancelled: false,
                    cancel_at: None,
                    plan,
                    request_id,
                    first: 0,
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

    pub(super) async fn on_sweep(&mut self, ev: SweepEvent) {
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
    pub(super) async fn finish_sweep(
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
                // A knee search's last progress already counted its points.
                if active.plan.batch_search.is_none() {
                    self.state.done = active.first + o.results.len();
                }
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
}

/// Gives freed heap back to the system after a sweep (sessions and buffers are
/// large, the idle daemon is small).
pub(super) fn release_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}
