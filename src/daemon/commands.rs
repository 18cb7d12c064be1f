//! Command handling: parse, dedupe, dispatch each verb, send the reply.

use bytes::Bytes;
use rumqttc::v5::mqttbytes::QoS;
use std::sync::atomic::Ordering;

use super::scheduler::{Admission, Job, Origin};
use super::{info, Daemon, Queued, MAX_COMMAND_CONFIGS};
use crate::bench::plan;
use crate::bench::result::now_ms;
use crate::mqtt::link::{Outbound, ToLink};
use crate::mqtt::messages::{self, Code, Command, Reply, SweepArgs};

impl Daemon {
    pub(super) async fn on_command(
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

    pub(super) async fn send_reply(
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
    pub(super) async fn sweep_start(
        &mut self,
        rid: &str,
        args: SweepArgs,
        expires_at: Option<i64>,
    ) -> Reply {
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

    pub(super) async fn sweep_cancel(
        &mut self,
        rid: &str,
        sweep_id: Option<&str>,
        all: bool,
    ) -> Reply {
        let c = self.sched.cancel(sweep_id, all);
        let mut what = Vec::new();
        if c.running {
            if let Some(a) = &mut self.active {
                a.thread.cancel.store(true, Ordering::Relaxed);
                a.cancelled = true;
                a.cancel_at.get_or_insert_with(tokio::time::Instant::now);
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

    pub(super) fn status_reply(&self, rid: &str) -> Reply {
        // One statvfs of the local store: lifts a `full` alarm once space is back.
        let st = self.store.refresh_space();
        let s = &self.state;
        let mut r = Reply::new(Some(rid), Code::Ok, self.status_text())
            .with("state", s.state.clone())
            .with("done", s.done)
            .with("total", s.total)
            .with("queued", self.sched.queued())
            .with("uptime_s", self.started.elapsed().as_secs())
            .with("edgebench_version", crate::VERSION);
        for (k, v) in info::store_fields(&st) {
            r = r.with(k, v);
        }
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

    pub(super) async fn info_reply(&self, rid: &str) -> Reply {
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
}
