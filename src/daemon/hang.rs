//! A configuration that never returns (a wedged Edge TPU or GPU driver, a runtime
//! stuck in a kernel call).
//!
//! A call into a runtime cannot be interrupted from inside the process. So the
//! daemon gives up on it instead: once the running configuration has taken longer
//! than `[watchdog] config_timeout_s` (or did not stop within `cancel_grace_s` of a
//! `sweep-cancel`), a `failed` record with `stop_reason = "timeout"` (or an
//! `interrupted` one, `"cancelled"`) is stored in its place and the thread is
//! abandoned: whatever it produces if its call ever returns is discarded. Then the
//! sweep goes on from the next configuration in a fresh thread
//! (`on_timeout = "continue"`) or ends `failed` (`"stop"`, the default: a wedged
//! accelerator usually wedges the next call too).
//!
//! The process keeps serving commands and telemetry, but a stuck thread may hold
//! the device. So systemd's watchdog is fed only while no sweep thread is stuck (a
//! continuation that makes progress counts as progress): with `WatchdogSec` set,
//! systemd restarts the daemon, which releases the device; the restart's recovery
//! finds everything already recorded.

use std::sync::atomic::Ordering;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::jobs::release_memory;
use super::recovery::stand_in_record;
use super::{sweep, Active, Daemon};
use crate::bench::result::{now_ms, Record};
use crate::mqtt::link::ToLink;

/// `[watchdog]`: limits on one configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WatchdogConfig {
    /// Wall-clock limit of one configuration (cool-down, session open, warm-up,
    /// timed phase), seconds; 0: none. Generous by default: a first TensorRT engine
    /// build can take many minutes.
    pub config_timeout_s: f64,
    /// After a configuration timed out: `"stop"` the sweep or `"continue"` with the
    /// next configuration.
    pub on_timeout: String,
    /// How long `sweep-cancel` waits for the running configuration to stop before
    /// giving up on it, seconds.
    pub cancel_grace_s: f64,
}

impl Default for WatchdogConfig {
    fn default() -> Self {
        Self {
            config_timeout_s: 1800.0,
            on_timeout: "stop".into(),
            cancel_grace_s: 10.0,
        }
    }
}

impl WatchdogConfig {
    /// Checks the values; errors name the key.
    pub fn validate(&self) -> Result<()> {
        for (k, v) in [
            ("config_timeout_s", self.config_timeout_s),
            ("cancel_grace_s", self.cancel_grace_s),
        ] {
            if !v.is_finite() || v < 0.0 {
                bail!("watchdog.{k} must be a finite number >= 0, got {v}");
            }
        }
        if !matches!(self.on_timeout.as_str(), "stop" | "continue") {
            bail!(
                "watchdog.on_timeout must be \"stop\" or \"continue\", got \"{}\"",
                self.on_timeout
            );
        }
        Ok(())
    }

    /// Whether a configuration running since `started_ms` is over the limit at `now`.
    pub fn timed_out(&self, started_ms: i64, now: i64) -> bool {
        self.config_timeout_s > 0.0
            && started_ms > 0
            && (now - started_ms) as f64 > self.config_timeout_s * 1000.0
    }
}

/// A sweep thread the daemon gave up on, until it ends (if ever).
pub(super) struct Hung {
    pub handle: std::thread::JoinHandle<()>,
    pub what: String,
    pub since: Instant,
}

impl Daemon {
    /// Every second while a sweep runs or a thread hangs: gives up on a configuration
    /// over its time limit, or on one that ignores a cancel.
    pub(super) async fn check_hang(&mut self) {
        self.hung.retain(|h| {
            let done = h.handle.is_finished();
            if done {
                log::info!("the sweep thread given up on ({}) ended", h.what);
            }
            !done
        });
        let w = self.setup.cfg.watchdog.clone();
        let Some(a) = &self.active else { return };
        let started = a.thread.watch.started_ms.load(Ordering::Relaxed);
        let now = now_ms();
        let cancel_stuck = started > 0
            && a.cancel_at
                .is_some_and(|t| t.elapsed().as_secs_f64() > w.cancel_grace_s);
        let timed_out = w.timed_out(started, now);
        if !cancel_stuck && !timed_out {
            return;
        }
        let secs = (now - started) as f64 / 1000.0;
        let (status, error, stop_reason) = if cancel_stuck {
            (
                "interrupted",
                format!(
                    "cancelled; the configuration did not stop within {} s (watchdog.cancel_grace_s) and was given up on",
                    w.cancel_grace_s
                ),
                "cancelled",
            )
        } else {
            (
                "failed",
                format!(
                    "timed out: no result after {secs:.0} s (watchdog.config_timeout_s = {}); the call into the runtime never returned",
                    w.config_timeout_s
                ),
                "timeout",
            )
        };
        let watch = a.thread.watch.clone();
        let store = self.store.clone();
        let (device_id, board, sweep_id) = (
            self.setup.device_id.clone(),
            self.board.clone(),
            a.sweep_id.clone(),
        );
        let e2 = error.clone();
        let given_up = tokio::task::spawn_blocking(move || {
            watch.abandon(started, &store, |c| {
                let r = stand_in_record(&device_id, &board, &sweep_id, c, status, &e2, stop_reason);
                Record::Result(Box::new(r)).to_json()
            })
        })
        .await;
        let c = match given_up {
            Ok(Ok(Some(c))) => c,
            // It finished meanwhile: not stuck.
            Ok(Ok(None)) => return,
            Ok(Err(e)) => {
                log::error!("{e:#}");
                return;
            }
            Err(e) => {
                log::error!("hang check failed: {e}");
                return;
            }
        };
        let Some(active) = self.active.take() else {
            return;
        };
        let what = format!(
            "sweep {} configuration {} ({} {} {} batch {})",
            active.sweep_id, c.index, c.model, c.precision, c.ep, c.batch
        );
        log::error!("{what}: {error}");
        self.hung.push(Hung {
            handle: active.thread.handle,
            what,
            since: Instant::now(),
        });
        self.to_link(ToLink::RecordsAvailable).await;
        // The next configuration of the plan (a knee search's point belongs to
        // configuration `c.config`), and the points run so far.
        let next = c.config.unwrap_or(c.index) + 1;
        let done = c.index + 1;
        if timed_out
            && !cancel_stuck
            && !active.cancelled
            && w.on_timeout == "continue"
            && next < active.plan.configs.len()
        {
            match sweep::start(
                self.setup.cfg.clone(),
                self.setup.zoo.clone(),
                active.plan.clone(),
                next,
                active.request_id.clone(),
                self.store.clone(),
                self.sweep_tx.clone(),
            ) {
                Ok(thread) => {
                    log::warn!(
                        "sweep {}: going on from configuration {next} (watchdog.on_timeout = \"continue\")",
                        active.sweep_id
                    );
                    self.state.done = done;
                    self.state.current = None;
                    self.active = Some(Active {
                        thread,
                        first: next,
                        cancel_at: None,
                        ..active
                    });
                    self.publish_state().await;
                    return;
                }
                Err(e) => log::error!("sweep {}: {e:#}", active.sweep_id),
            }
        }
        let store = self.store.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || store.clear_journal()).await {
            log::error!("store: {e:#}");
        }
        self.state.current = None;
        self.state.eta_s = None;
        self.state.done = c.index;
        self.state.state = if cancel_stuck { "cancelled" } else { "failed" }.into();
        self.state.error = Some(error);
        self.publish_state().await;
        release_memory();
        if let Some(next) = self.sched.finished() {
            self.start_sweep(next).await;
        }
    }

    /// Why the systemd watchdog must not be fed (a stuck sweep thread), if so.
    pub(super) fn hang_withholds(&self) -> Option<String> {
        let w = &self.setup.cfg.watchdog;
        if let Some(a) = &self.active {
            let started = a.thread.watch.started_ms.load(Ordering::Relaxed);
            if w.timed_out(started, now_ms()) {
                return Some(format!(
                    "sweep {}: a configuration has run for {} s, over watchdog.config_timeout_s",
                    a.sweep_id,
                    (now_ms() - started) / 1000
                ));
            }
            // A continuation that makes progress: the process is useful, keep it.
            return None;
        }
        self.hung.iter().find(|h| !h.handle.is_finished()).map(|h| {
            format!(
                "the sweep thread of {} has been stuck for {} s",
                h.what,
                h.since.elapsed().as_secs()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_values_name_the_key() {
        let mut w = WatchdogConfig::default();
        w.validate().unwrap();
        w.on_timeout = "retry".into();
        assert!(w
            .validate()
            .unwrap_err()
            .to_string()
            .contains("watchdog.on_timeout"));
        w.on_timeout = "continue".into();
        w.config_timeout_s = f64::NAN;
        assert!(w
            .validate()
            .unwrap_err()
            .to_string()
            .contains("watchdog.config_timeout_s"));
    }

    #[test]
    fn timeout_counts_only_a_running_configuration() {
        let w = WatchdogConfig {
            config_timeout_s: 2.0,
            ..Default::default()
        };
        assert!(!w.timed_out(0, 10_000_000), "nothing running");
        assert!(!w.timed_out(1_000, 3_000));
        assert!(w.timed_out(1_000, 3_001));
        let off = WatchdogConfig {
            config_timeout_s: 0.0,
            ..Default::default()
        };
        assert!(!off.timed_out(1, i64::MAX / 2));
    }
}
