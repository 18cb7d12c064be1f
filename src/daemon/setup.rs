//! The validated configuration and everything derived from it (`Setup`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use super::scheduler::Timetable;
use crate::bench::plan::{self, SweepRequest};
use crate::config::{self, Config};
use crate::models::Zoo;
use crate::mqtt::identity;
use crate::mqtt::link::{self, LinkSettings};
use crate::mqtt::messages::Limits;
use crate::mqtt::topics::Topics;
use crate::telemetry::Telemetry;

/// A validated configuration with everything derived from it.
pub(super) struct Setup {
    pub(super) cfg: Arc<Config>,
    pub(super) zoo: Arc<Zoo>,
    pub(super) device_id: String,
    pub(super) topics: Topics,
    /// None: MQTT off (`mqtt.host` empty); results are still stored.
    pub(super) link: Option<LinkSettings>,
    pub(super) timetable: Option<Timetable>,
    pub(super) limits: Limits,
    pub(super) store_dir: PathBuf,
}

impl Setup {
    /// Everything that can be checked before `READY=1`: config, device id, model zoo,
    /// the scheduled sweeps' plans, the timetable, broker credentials and TLS files.
    pub(super) fn load(path: Option<&Path>, sets: &[String]) -> Result<Setup> {
        let (cfg, sources) = config::load_with_overrides(path, sets)?;
        let device_id = cfg.device_id();
        config::validate_device_id(&device_id).context("device.id")?;
        let topics = Topics::new(&cfg.mqtt.topic_prefix, &device_id).context("device.id")?;
        let zoo = Zoo::load(&cfg).context("models")?;
        for (name, s) in &cfg.sweeps {
            if let Err(e) = zoo.expand(&s.models) {
                log::warn!("sweeps.{name}.models: {e:#}");
            }
        }
        let timetable = Timetable::parse(&cfg.schedule.every).context("schedule.every")?;
        if timetable.is_some() && cfg.schedule.sweep.is_empty() && cfg.schedule.on_boot.is_empty() {
            bail!("schedule.every is set but neither schedule.sweep nor schedule.on_boot names a sweep to run");
        }
        for (key, name) in [
            ("schedule.on_boot", &cfg.schedule.on_boot),
            ("schedule.sweep", &cfg.schedule.sweep),
        ] {
            if !name.is_empty() {
                let plan =
                    plan::build(&cfg, &zoo, &request(name)).with_context(|| key.to_string())?;
                for c in &plan.configs {
                    match &c.entry {
                        Some(e) if !zoo.path_of(e).is_file() => log::warn!(
                            "{key}: model file {} is missing (its configurations will fail)",
                            zoo.path_of(e).display()
                        ),
                        _ => {}
                    }
                }
            }
        }
        if !(cfg.schedule.boot_delay_s.is_finite() && cfg.schedule.boot_delay_s >= 0.0) {
            bail!("schedule.boot_delay_s must be a number >= 0");
        }
        let link = if cfg.mqtt.host.is_empty() {
            None
        } else {
            let machine = identity::machine_hash(Path::new(&cfg.telemetry.sysroot));
            let mut l =
                LinkSettings::from_config(&cfg.mqtt, &device_id, &topics, machine.as_deref())?;
            l.rebirth_topic = cfg
                .homeassistant
                .discovery
                .then(|| cfg.homeassistant.birth_topic());
            Some(l)
        };
        if cfg.commands.max_payload_bytes as u64 >= link::MAX_INCOMING_PACKET as u64 {
            bail!(
                "commands.max_payload_bytes must be below {} bytes",
                link::MAX_INCOMING_PACKET
            );
        }
        if cfg.commands.max_batch == 0 || cfg.commands.max_batch > config::MAX_BATCH {
            bail!(
                "commands.max_batch must be in 1..={}, got {}",
                config::MAX_BATCH,
                cfg.commands.max_batch
            );
        }
        super::commands::validate(&cfg.commands)?;
        let limits = Limits {
            max_payload_bytes: cfg.commands.max_payload_bytes,
            max_batches: cfg.commands.max_batches,
            max_batch: cfg.commands.max_batch,
        };
        let store_dir = cfg.store_dir();
        log::info!(
            "configuration: {}; device {device_id}; models from {}; store {}; mqtt {}",
            match &sources.file {
                Some(f) => f.display().to_string(),
                None => "built-in defaults".into(),
            },
            zoo.manifest.display(),
            store_dir.display(),
            link.as_ref()
                .map(|l| l.address.clone())
                .unwrap_or_else(|| "off".into()),
        );
        Ok(Setup {
            cfg: Arc::new(cfg),
            zoo: Arc::new(zoo),
            device_id,
            topics,
            link,
            timetable,
            limits,
            store_dir,
        })
    }

    pub(super) fn board(&self) -> String {
        if self.cfg.device.board.is_empty() {
            Telemetry::open(&self.cfg.telemetry, "", &self.cfg.device.rail_table)
                .board()
                .to_string()
        } else {
            self.cfg.device.board.clone()
        }
    }
}

pub(super) fn request(sweep: &str) -> SweepRequest {
    SweepRequest {
        sweep: sweep.to_string(),
        ..Default::default()
    }
}

impl Setup {
    /// What the link depends on: `[mqtt]`, `[homeassistant]` (discovery is published
    /// by the link), the device id, and the secrets read from files (a changed
    /// password file counts too).
    pub(super) fn link_fingerprint(&self) -> String {
        format!(
            "{:?}|{:?}|{}|{:?}",
            self.cfg.mqtt,
            self.cfg.homeassistant,
            self.device_id,
            self.link.as_ref().map(|l| l.options.credentials())
        )
    }
}
