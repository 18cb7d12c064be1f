//! Command handling: parse, dedupe, dispatch each verb, send the reply.

use bytes::Bytes;
use rumqttc::v5::mqttbytes::QoS;
use std::sync::atomic::Ordering;

use super::scheduler::{Admission, Job, Origin};
use super::{info, Daemon, Queued, MAX_COMMAND_CONFIGS};
use crate::bench::plan;
use crate::bench::result::now_ms;
use crate::config::{CommandsConfig, SweepConfig};
use crate::mqtt::link::{Outbound, ToLink};
use crate::mqtt::messages::{self, Code, Command, Reply, SweepArgs, Verb};

/// How a command arrived (MQTT properties and flags that change its handling).
#[derive(Debug, Default)]
pub(super) struct Delivery {
    pub response_topic: Option<String>,
    pub correlation: Option<Bytes>,
    /// On the fleet topic (`[commands] fleet_verbs` applies).
    pub fleet: bool,
    /// Published with the retain flag: never acted on.
    pub retained: bool,
    /// MQTT 5 message expiry left, seconds: also bounds the wait in the sweep queue.
    pub message_expiry_s: Option<u32>,
}

/// Configurations a `sweep-start` would plan at most: the product of its axes
/// (lists already deduplicated; models after set expansion), computed before anything
/// is built, saturating instead of overflowing.
pub(super) fn planned_configs(models: usize, args: &SweepArgs, sweep: &SweepConfig) -> u64 {
    fn n<T>(asked: &Option<Vec<T>>, default: usize) -> u64 {
        asked.as_ref().map_or(default, Vec::len) as u64
    }
    let eps = if sweep.backend == "tflite" {
        1
    } else {
        n(&args.eps, sweep.eps.len())
    };
    [
        models as u64,
        // A knee search is one series per configuration.
        if args.batch_auto {
            1
        } else {
            n(&args.batches, sweep.batches.len())
        },
        eps,
        n(&args.threads, sweep.threads.len()),
        n(&args.precisions, sweep.precisions.len()),
    ]
    .into_iter()
    .fold(1u64, u64::saturating_mul)
}

/// Checks `[commands] fleet_verbs` (known verbs) and `response_topic_prefixes` (topic
/// names without wildcards).
pub(super) fn validate(c: &CommandsConfig) -> anyhow::Result<()> {
    for v in &c.fleet_verbs {
        if Verb::parse(v).is_none() {
            let known: Vec<&str> = Verb::ALL.iter().map(|v| v.as_str()).collect();
            anyhow::bail!(
                "commands.fleet_verbs: unknown verb `{v}` (known: {})",
                known.join(", ")
            );
        }
    }
    for p in &c.response_topic_prefixes {
        if p.is_empty() || p.contains(['#', '+', '\0']) {
            anyhow::bail!(
                "commands.response_topic_prefixes: `{p}` must be a topic prefix without wildcards"
            );
        }
    }
    Ok(())
}

impl Daemon {
    pub(super) async fn on_command(&mut self, verb: &str, payload: &[u8], how: Delivery) {
        let now = now_ms();
        let parsed = messages::parse(verb, payload, &self.setup.limits, now);
        let rid = match &parsed {
            Ok(r) => Some(r.request_id.clone()),
            Err(r) => r.request_id.clone(),
        };
        let response_topic = how.response_topic.filter(|t| {
            let ok = self
                .setup
                .topics
                .response_topic_allowed(t, &self.setup.cfg.commands.response_topic_prefixes);
            if !ok {
                log::warn!(
                    "command {verb} ({}): response topic `{t}` is outside the allowed prefixes (commands.response_topic_prefixes); replying on {} only",
                    rid.as_deref().unwrap_or("-"),
                    self.setup.topics.reply()
                );
            }
            ok
        });
        if let Some(id) = &rid {
            if let Some(original) = self.replies.get(id) {
                log::info!("command {verb}: request_id `{id}` already answered; sending the original reply again");
                let original = Bytes::from(original.to_string());
                self.send_payload(original, response_topic, how.correlation)
                    .await;
                return;
            }
        }
        let reply = if how.retained {
            Reply::new(
                rid.as_deref(),
                Code::Retained,
                "ignored: the command was published with retain, which would run it again at every reconnect; publish commands without retain",
            )
        } else if how.fleet
            && !self
                .setup
                .cfg
                .commands
                .fleet_verbs
                .iter()
                .any(|v| v == verb)
        {
            Reply::new(
                rid.as_deref(),
                Code::NotAllowed,
                format!(
                    "`{verb}` may not be sent to the whole fleet (commands.fleet_verbs: {}); send it to this board's own topic",
                    self.setup.cfg.commands.fleet_verbs.join(", ")
                ),
            )
        } else {
            match parsed {
                Err(r) => r,
                Ok(req) => {
                    let rid = req.request_id.clone();
                    // The broker's own expiry (what is left of it) bounds the wait
                    // in our queue as well.
                    let from_broker = how
                        .message_expiry_s
                        .map(|s| now.saturating_add(i64::from(s) * 1000));
                    let expires_at = match (req.expires_at, from_broker) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    match req.command {
                        Command::SweepStart(args) => self.sweep_start(&rid, args, expires_at).await,
                        Command::SweepCancel { sweep_id, all } => {
                            self.sweep_cancel(&rid, sweep_id.as_deref(), all).await
                        }
                        Command::StatusGet => self.status_reply(&rid),
                        Command::InfoGet => self.info_reply(&rid).await,
                    }
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
        let payload = reply.to_json(&self.setup.device_id, now_ms());
        if let Some(id) = &rid {
            if let Err(e) = self.replies.insert(id, &payload) {
                log::warn!("cannot remember request_id `{id}`: {e:#}");
            }
        }
        self.send_payload(payload.into(), response_topic, how.correlation)
            .await;
    }

    pub(super) async fn send_reply(
        &self,
        reply: &Reply,
        response_topic: Option<String>,
        correlation: Option<Bytes>,
    ) {
        let payload: Bytes = reply.to_json(&self.setup.device_id, now_ms()).into();
        self.send_payload(payload, response_topic, correlation)
            .await;
    }

    /// Publishes a reply payload on `<p>/reply`, and on the response topic if any.
    async fn send_payload(
        &self,
        payload: Bytes,
        response_topic: Option<String>,
        correlation: Option<Bytes>,
    ) {
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
        // Refuse a plan that multiplies out of bounds before building any of it.
        let models = match &args.models {
            Some(m) => self.setup.zoo.expand(m).map(|v| v.len()).unwrap_or(0),
            None => self
                .setup
                .zoo
                .expand(&sweep.models)
                .map(|v| v.len())
                .unwrap_or(0),
        };
        let planned = planned_configs(models, &args, sweep);
        if planned > MAX_COMMAND_CONFIGS as u64 {
            return Reply::new(
                Some(rid),
                Code::InvalidArgument,
                format!(
                    "{planned} configurations asked for (models x batches x providers x threads x precisions); one command may ask for at most {MAX_COMMAND_CONFIGS}"
                ),
            )
            .with("configurations", planned);
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
        // A knee search measures a series of batches per configuration.
        let size = match plan.batch_search {
            Some(_) => format!(
                "{total} configurations, batch auto (at most {} points)",
                plan.max_points()
            ),
            None => format!("{total} configurations"),
        };
        let auto = plan.batch_search.is_some();
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
                    format!("sweep {} started: {size}", args.sweep),
                )
                .with("sweep_id", sweep_id)
                .with("total", total)
                .with("batch_auto", auto)
            }
            Admission::Queued { position } => {
                self.publish_state().await;
                Reply::new(
                    Some(rid),
                    Code::Queued,
                    format!("sweep {} queued at position {position}: {size}", args.sweep),
                )
                .with("sweep_id", sweep_id)
                .with("total", total)
                .with("batch_auto", auto)
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
            .with("edgebench_version", crate::VERSION)
            .with("remembered_request_ids", self.replies.len());
        for (k, v) in info::store_fields(&st) {
            r = r.with(k, v);
        }
        if let Some(l) = &self.link {
            r = r
                .with(
                    "commands_busy",
                    l.stats.commands_busy.load(Ordering::Relaxed),
                )
                .with(
                    "replies_dropped",
                    l.stats.replies_dropped.load(Ordering::Relaxed),
                )
                .with("dead_letters", l.dead_letters.count.load(Ordering::Relaxed));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planned_configs_multiplies_the_axes_without_overflow() {
        let sweep = SweepConfig {
            models: vec!["a".into()],
            batches: vec![1, 2],
            eps: vec!["cpu".into()],
            threads: vec![1],
            precisions: vec!["fp32".into()],
            ..Default::default()
        };
        let none = SweepArgs {
            sweep: "s".into(),
            ..Default::default()
        };
        assert_eq!(planned_configs(1, &none, &sweep), 2);
        let wide = SweepArgs {
            sweep: "s".into(),
            batches: Some((1..=256).collect()),
            eps: Some(vec!["cpu".into(), "cuda".into()]),
            threads: Some((0..64).collect()),
            precisions: Some(vec!["fp32".into(), "fp16".into(), "int8".into()]),
            ..Default::default()
        };
        assert_eq!(planned_configs(3, &wide, &sweep), 3 * 256 * 2 * 64 * 3);
        // TFLite has one delegate per sweep whatever `eps` says.
        let tflite = SweepConfig {
            backend: "tflite".into(),
            ..sweep.clone()
        };
        assert_eq!(planned_configs(3, &wide, &tflite), 3 * 256 * 64 * 3);
        assert_eq!(planned_configs(usize::MAX, &wide, &sweep), u64::MAX);
    }

    #[test]
    fn fleet_verbs_and_response_prefixes_are_checked() {
        let mut c = CommandsConfig::default();
        validate(&c).unwrap();
        c.fleet_verbs.push("reboot".into());
        let e = validate(&c).unwrap_err().to_string();
        assert!(
            e.contains("commands.fleet_verbs") && e.contains("reboot"),
            "{e}"
        );
        c.fleet_verbs.pop();
        c.response_topic_prefixes = vec!["apps/#".into()];
        let e = validate(&c).unwrap_err().to_string();
        assert!(e.contains("commands.response_topic_prefixes"), "{e}");
    }
}
