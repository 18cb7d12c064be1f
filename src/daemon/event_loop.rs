//! The main loop: signals, link and sweep events, the boot sweep and timetable,
//! telemetry and watchdog ticks; SIGHUP reload and shutdown.

use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result};
use rumqttc::v5::mqttbytes::QoS;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::scheduler::Origin;
use super::setup::Setup;
use super::sweep::SweepEvent;
use super::{info, service, Daemon, LINK_STOP_GRACE, SWEEP_STOP_GRACE};
use crate::bench::result::now_ms;
use crate::mqtt::link::{LinkHandle, LinkState, Outbound, ToLink};

impl Daemon {
    pub(super) async fn run(&mut self) -> Result<()> {
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
        let mut hang_tick = tokio::time::interval(Duration::from_secs(1));
        hang_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let why = loop {
            tokio::select! {
                _ = sigterm.recv() => break "SIGTERM",
                _ = sigint.recv() => break "SIGINT",
                _ = sighup.recv() => {
                    self.reload().await;
                    telemetry_tick = self.telemetry_interval();
                }
                Some(ev) = recv_opt(&mut self.from_link) => self.on_link(ev).await,
                Some(st) = link_state(&mut self.link) => self.on_link_state(st),
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
                _ = hang_tick.tick(), if self.active.is_some() || !self.hung.is_empty() => {
                    self.check_hang().await;
                }
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

    /// The watchdog is fed only while the loop turns, no sweep thread is stuck
    /// (see `hang`) and the link is not stuck.
    pub(super) fn healthy(&self, period: Duration) -> bool {
        if let Some(why) = self.hang_withholds() {
            log::error!("{why}; withholding the watchdog ping so that systemd restarts the daemon");
            return false;
        }
        let Some(l) = &self.link else { return true };
        let age = now_ms() - l.heartbeat.load(Ordering::Relaxed);
        let limit = (period.as_millis() as i64).max(15_000);
        if age > limit {
            log::error!("mqtt link stalled for {age} ms; withholding the watchdog ping");
            return false;
        }
        true
    }

    pub(super) fn telemetry_interval(&self) -> Option<tokio::time::Interval> {
        let s = self.setup.cfg.mqtt.telemetry_interval_s;
        if self.link.is_none() || s <= 0.0 {
            return None;
        }
        let mut i = tokio::time::interval(Duration::from_secs_f64(s.max(0.1)));
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Some(i)
    }

    /// SIGHUP: load the configuration again; keep the old one when the new is invalid.
    pub(super) async fn reload(&mut self) {
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
                // The probe child runs off the runtime thread, bounded.
                let (path, sets) = (self.config_path.clone(), self.sets.clone());
                match tokio::task::spawn_blocking(move || {
                    info::runtimes(path.as_deref(), &sets, info::RUNTIMES_TIMEOUT)
                })
                .await
                {
                    Ok(r) => self.runtimes = r,
                    Err(e) => log::error!("runtime probe failed: {e}"),
                }
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
    pub(super) async fn shutdown(&mut self, why: &str) {
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

async fn recv_opt<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

/// The link's connection state when it changes; pending without a link.
async fn link_state(link: &mut Option<LinkHandle>) -> Option<LinkState> {
    match link {
        Some(l) => {
            l.state.changed().await.ok()?;
            let st = l.state.borrow_and_update().clone();
            Some(st)
        }
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
