//! Typed configuration: defaults, layered loading, validation.
//!
//! Layers, lowest first: built-in defaults < the config file (`--config FILE`, else
//! `/etc/edgebench/edgebench.toml` when it exists) < environment variables
//! `EDGEBENCH__SECTION__KEY`. Every layer is checked on its own first, so an unknown
//! or mistyped key is reported with the file or variable it came from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// Where the config file lives on a board.
pub const SYSTEM_CONFIG: &str = "/etc/edgebench/edgebench.toml";
/// Prefix of environment overrides (`EDGEBENCH__MQTT__HOST=broker`).
pub const ENV_PREFIX: &str = "EDGEBENCH";

/// Largest batch size accepted anywhere (CLI, config, MQTT).
pub const MAX_BATCH: u32 = 4096;
/// Largest thread count accepted anywhere.
pub const MAX_THREADS: u32 = 1024;

/// The whole configuration. Every section has defaults, so an empty file is valid.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub device: DeviceConfig,
    pub models: ModelsConfig,
    pub onnxruntime: OnnxRuntimeConfig,
    pub tflite: TfliteConfig,
    pub cuda: CudaConfig,
    pub tensorrt: TensorRtConfig,
    pub xnnpack: XnnpackConfig,
    pub acl: AclConfig,
    pub protocol: ProtocolConfig,
    pub telemetry: TelemetryConfig,
    pub mqtt: MqttConfig,
    pub store: StoreConfig,
    pub schedule: ScheduleConfig,
    pub commands: CommandsConfig,
    pub report: ReportConfig,
    /// `--batch auto`: how the knee search grows and refines.
    pub batch_search: crate::bench::search::BatchSearchConfig,
    pub watchdog: crate::daemon::hang::WatchdogConfig,
    pub collect: crate::collect::config::CollectConfig,
    pub homeassistant: crate::mqtt::homeassistant::HomeAssistantConfig,
    /// Named sweeps (`[sweeps.quick]`, `[sweeps.paper]`, ...).
    pub sweeps: BTreeMap<String, SweepConfig>,
}

/// Identity of this board.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceConfig {
    /// Device id used in MQTT topics and records, `[a-z0-9-]`. Empty: from the hostname.
    pub id: String,
    /// Board name override. Empty: detected (device tree, L4T release, DMI).
    pub board: String,
    /// Power-rail table to use for board power (empty: chosen from the detected board).
    pub rail_table: String,
}

/// Where the model zoo lives.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ModelsConfig {
    /// Directory holding the model files and `manifest.toml`.
    /// Empty: `models/build` under the working directory, else `/usr/share/edgebench/models`.
    pub dir: String,
    /// Manifest file. Empty: `manifest.toml` in `dir`, else `models/manifest.toml`.
    pub manifest: String,
}

/// ONNX Runtime library and session settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OnnxRuntimeConfig {
    /// Path of `libonnxruntime.so`. Empty: `ORT_DYLIB_PATH`, the system library
    /// paths, then the project-local copy in `.deps/onnxruntime/`.
    pub library: String,
    /// When the requested execution provider is not in the loaded build: `false`
    /// fails the run (default), `true` runs on CPU and records `ep = "cpu"`.
    pub allow_fallback: bool,
    /// An accelerator provider (cuda, tensorrt, xnnpack, acl...) that cannot take some
    /// nodes: `false` fails the run (ONNX Runtime's `session.disable_cpu_ep_fallback`),
    /// `true` lets those nodes run on the CPU and records `ort_cpu_fallback = "allowed"`.
    pub allow_partial_fallback: bool,
    /// Where inputs and outputs live: `host` (default; with an accelerator ONNX Runtime
    /// copies outputs back inside the timed call) or `device` (CUDA device memory, cuda
    /// and tensorrt only; the timed call is inference alone, copies recorded as
    /// `h2d_ms` / `d2h_ms`).
    pub io: String,
    /// Intra-op spinning (busy-wait of idle pool threads).
    pub spinning: bool,
    /// Graph optimisation level: `disable`, `basic`, `extended`, `all`.
    pub graph_optimization: String,
    /// Inter-op threads (0: runtime default).
    pub inter_threads: u32,
    /// Pin intra-op threads to these cores, e.g. `"1,2;3,4"` (ORT syntax). Empty: no pinning.
    pub affinity: String,
}

impl Default for OnnxRuntimeConfig {
    fn default() -> Self {
        Self {
            library: String::new(),
            allow_fallback: false,
            allow_partial_fallback: false,
            io: "host".into(),
            spinning: true,
            graph_optimization: "all".into(),
            inter_threads: 0,
            affinity: String::new(),
        }
    }
}

/// TensorFlow Lite and the Edge TPU delegate.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct TfliteConfig {
    /// Path of `libtensorflowlite_c.so`. Empty: the standard library paths, then `.deps/tflite/`.
    pub library: String,
    /// Path of `libedgetpu.so.1`. Empty: the standard library paths.
    pub edgetpu_library: String,
    /// Edge TPU to use: empty (first found), `usb`, `pci`, `usb:N`, `pci:N`, or an index.
    pub edgetpu_device: String,
}

/// NVIDIA CUDA execution provider options.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CudaConfig {
    pub device_id: u32,
    /// cuDNN convolution algorithm search: `exhaustive`, `heuristic`, `default`.
    pub cudnn_conv_algo_search: String,
    /// GPU memory limit in MiB (0: no limit).
    pub mem_limit_mb: u64,
}

impl Default for CudaConfig {
    fn default() -> Self {
        Self {
            device_id: 0,
            cudnn_conv_algo_search: "exhaustive".into(),
            mem_limit_mb: 0,
        }
    }
}

/// NVIDIA TensorRT execution provider options.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TensorRtConfig {
    pub device_id: u32,
    pub fp16: bool,
    pub int8: bool,
    /// Builder workspace in MiB.
    pub workspace_mb: u64,
    /// Engine cache, so engines are built once per board. Empty: `<store.dir>/trt-cache`.
    pub engine_cache_dir: String,
    /// Run DLA core N (-1: none).
    pub dla_core: i32,
}

impl Default for TensorRtConfig {
    fn default() -> Self {
        Self {
            device_id: 0,
            fp16: false,
            int8: false,
            workspace_mb: 1024,
            engine_cache_dir: String::new(),
            dla_core: -1,
        }
    }
}

/// XNNPACK execution provider options.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct XnnpackConfig {
    /// XNNPACK's own thread pool size (0: runtime default).
    pub threads: u32,
}

/// Arm Compute Library execution provider options.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct AclConfig {
    /// Use ACL's fast-math convolutions.
    pub fast_math: bool,
}

/// Measurement protocol (DESIGN.md section 4). Every key can be overridden per sweep.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ProtocolConfig {
    /// Untimed warm-up: at least this many runs ...
    pub warmup_runs: u32,
    /// ... and at least this many seconds.
    pub warmup_s: f64,
    /// Timed phase: at least this many runs ...
    pub min_runs: u32,
    /// ... and at least this many seconds ...
    pub min_s: f64,
    /// ... but never longer than this.
    pub max_s: f64,
    /// Stop early once the 95 % CI half-width of the median, relative to it, is
    /// below this (0: off). Only after `min_runs` and `min_s` are met.
    pub target_rel_ci: f64,
    /// What `target_rel_ci` is about: `median` (latency median) or `mean` (mean latency,
    /// hence throughput, by batch means).
    pub ci_target_stat: crate::bench::stats::CiStat,
    /// Seed of input data and configuration order.
    pub seed: u64,
    /// Shuffle the order of configurations (seeded).
    pub shuffle: bool,
    /// A model whose batch axis is fixed to B, asked for batch N != B: `sequential`
    /// runs N / B calls per batch (`batch_mode = "sequential"`), `fail` fails the run.
    pub fixed_batch: String,
    /// Cool-down between configurations: wait until the hottest zone is below this ...
    pub cooldown_max_temp_c: f64,
    /// ... or this many seconds have passed (0: no cool-down).
    pub cooldown_max_s: f64,
    /// Knee: smallest batch reaching this fraction of the peak throughput.
    pub knee_fraction: f64,
}

impl Default for ProtocolConfig {
    fn default() -> Self {
        Self {
            warmup_runs: 5,
            warmup_s: 1.0,
            min_runs: 50,
            min_s: 3.0,
            max_s: 20.0,
            target_rel_ci: 0.0,
            ci_target_stat: Default::default(),
            seed: 42,
            shuffle: false,
            fixed_batch: "sequential".into(),
            cooldown_max_temp_c: 60.0,
            cooldown_max_s: 30.0,
            knee_fraction: 0.95,
        }
    }
}

impl ProtocolConfig {
    /// This protocol with a sweep's overrides applied.
    pub fn with(&self, o: &SweepConfig) -> ProtocolConfig {
        ProtocolConfig {
            warmup_runs: o.warmup_runs.unwrap_or(self.warmup_runs),
            warmup_s: o.warmup_s.unwrap_or(self.warmup_s),
            min_runs: o.min_runs.unwrap_or(self.min_runs),
            min_s: o.min_s.unwrap_or(self.min_s),
            max_s: o.max_s.unwrap_or(self.max_s),
            target_rel_ci: o.target_rel_ci.unwrap_or(self.target_rel_ci),
            ci_target_stat: o.ci_target_stat.unwrap_or(self.ci_target_stat),
            seed: o.seed.unwrap_or(self.seed),
            shuffle: o.shuffle.unwrap_or(self.shuffle),
            fixed_batch: o
                .fixed_batch
                .clone()
                .unwrap_or_else(|| self.fixed_batch.clone()),
            cooldown_max_temp_c: o.cooldown_max_temp_c.unwrap_or(self.cooldown_max_temp_c),
            cooldown_max_s: o.cooldown_max_s.unwrap_or(self.cooldown_max_s),
            knee_fraction: o.knee_fraction.unwrap_or(self.knee_fraction),
        }
    }

    /// Checks ranges; `at` names where these values came from.
    pub fn validate(&self, at: &str) -> Result<()> {
        let finite_nonneg = |v: f64, k: &str| -> Result<()> {
            if !v.is_finite() || v < 0.0 {
                bail!("{at}: `{k}` must be a finite number >= 0, got {v}");
            }
            Ok(())
        };
        finite_nonneg(self.warmup_s, "warmup_s")?;
        finite_nonneg(self.min_s, "min_s")?;
        finite_nonneg(self.max_s, "max_s")?;
        finite_nonneg(self.target_rel_ci, "target_rel_ci")?;
        finite_nonneg(self.cooldown_max_s, "cooldown_max_s")?;
        if self.min_runs == 0 {
            bail!("{at}: `min_runs` must be at least 1");
        }
        crate::backend::types::FixedBatch::parse(&self.fixed_batch)
            .map_err(|e| anyhow::anyhow!("{at}: {e}"))?;
        if self.max_s <= 0.0 {
            bail!("{at}: `max_s` must be above 0");
        }
        if self.min_s > self.max_s {
            bail!(
                "{at}: `min_s` ({}) is above `max_s` ({})",
                self.min_s,
                self.max_s
            );
        }
        if self.max_s > 24.0 * 3600.0 {
            bail!("{at}: `max_s` ({}) is above one day", self.max_s);
        }
        if !(self.knee_fraction > 0.0 && self.knee_fraction <= 1.0) {
            bail!(
                "{at}: `knee_fraction` must be in (0, 1], got {}",
                self.knee_fraction
            );
        }
        Ok(())
    }
}

/// Telemetry sampling during timed windows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Root that `/sys`, `/proc`, `/etc` are read under (a captured tree, or the host's in a container).
    pub sysroot: String,
    /// Sampling rate during timed windows, Hz (never faster than a sensor's own update interval).
    pub rate_hz: f64,
    /// A frequency more than this fraction below its cap counts as throttling.
    pub freq_drop_fraction: f64,
    /// Disable telemetry entirely.
    pub enabled: bool,
    /// Read the Raspberry Pi firmware's throttle bits from the deprecated
    /// `soc:firmware/get_throttled` file (newer Pi kernels log a one-time warning on
    /// the first read). Off: under-voltage from hwmon `rpi_volt` only.
    pub rpi_get_throttled: bool,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            sysroot: "/".into(),
            rate_hz: 10.0,
            freq_drop_fraction: 0.10,
            enabled: true,
            rpi_get_throttled: true,
        }
    }
}

/// MQTT broker connection (daemon).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// Broker host. Empty: MQTT off (results are still stored).
    pub host: String,
    pub port: u16,
    pub username: String,
    /// File holding the password (never the password itself in config).
    pub password_file: String,
    /// Topic prefix; topics are `<topic_prefix>/<device_id>/...`.
    pub topic_prefix: String,
    /// Telemetry publish interval in seconds (0: off).
    pub telemetry_interval_s: f64,
    /// Keep-alive in seconds.
    pub keepalive_s: u64,
    /// Reconnect backoff bounds, seconds.
    pub backoff_min_s: f64,
    pub backoff_max_s: f64,
    /// Send `password_file`'s password over a connection without TLS (refused otherwise).
    pub allow_plaintext_password: bool,
    /// MQTT 5 session expiry, seconds: the broker keeps the subscriptions and queues
    /// QoS 1 commands this long while the board is away (0: a clean session each time).
    pub session_expiry_s: u32,
    pub tls: MqttTlsConfig,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: 1883,
            username: String::new(),
            password_file: String::new(),
            topic_prefix: "edgebench/v1".into(),
            telemetry_interval_s: 5.0,
            keepalive_s: 30,
            backoff_min_s: 0.5,
            backoff_max_s: 60.0,
            allow_plaintext_password: false,
            session_expiry_s: 86_400,
            tls: MqttTlsConfig::default(),
        }
    }
}

/// TLS to the broker. `enabled` (trusting the system CA roots) or a CA file turns TLS
/// on; cert and key add client authentication.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct MqttTlsConfig {
    /// TLS with the system CA roots (plus `ca_file` when set).
    pub enabled: bool,
    pub ca_file: String,
    pub cert_file: String,
    pub key_file: String,
}

/// Results store (the source of truth).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Directory of the results spool and state. Empty: `$STATE_DIRECTORY`, else `/var/lib/edgebench`.
    pub dir: String,
    /// Keep at most this many MiB of acknowledged records (oldest pruned first).
    pub retention_mb: u64,
    /// Cap on all stored records, acknowledged or not, in bytes (0: none).
    pub max_bytes: u64,
    /// Free-space guard: leave at least this many bytes free on the store's filesystem (0: off).
    pub min_free_bytes: u64,
    /// At the cap with only unacknowledged records left: `"refuse"` new records
    /// (nothing stored is dropped) or `"drop_oldest"` unacknowledged segments.
    pub when_full: String,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            dir: String::new(),
            retention_mb: 64,
            max_bytes: 256 << 20,
            min_free_bytes: 16 << 20,
            when_full: "refuse".into(),
        }
    }
}

/// When the daemon runs sweeps by itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Sweep to run after boot (empty: none).
    pub on_boot: String,
    /// Seconds to wait after start before the boot sweep.
    pub boot_delay_s: f64,
    /// Timetable: empty (none), an interval (`"30m"`, `"6h"`, `"1d"`), or `"daily HH:MM"` (UTC).
    pub every: String,
    /// Sweep run by the timetable (empty: the `on_boot` sweep).
    pub sweep: String,
}

/// Limits on MQTT commands.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CommandsConfig {
    /// Sweeps waiting behind the running one before `busy` is answered.
    pub queue_depth: u32,
    /// Largest accepted command payload, bytes.
    pub max_payload_bytes: usize,
    /// Most batch sizes in one command.
    pub max_batches: usize,
    /// Largest batch size a command may ask for.
    pub max_batch: u32,
    /// Verbs a fleet command (`<topic_prefix>/all/cmd/<verb>`) may trigger.
    pub fleet_verbs: Vec<String>,
    /// Topic prefixes MQTT 5 response topics must be under. Empty: any topic outside
    /// `<topic_prefix>/`, or under this board's own `<topic_prefix>/<device id>/reply/`.
    pub response_topic_prefixes: Vec<String>,
}

impl Default for CommandsConfig {
    fn default() -> Self {
        Self {
            queue_depth: 2,
            max_payload_bytes: 16 * 1024,
            max_batches: 16,
            max_batch: 256,
            fleet_verbs: vec!["status-get".into(), "info-get".into(), "sweep-start".into()],
            response_topic_prefixes: Vec::new(),
        }
    }
}

/// Reporting.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ReportConfig {
    /// Baseline for relative gains, `backend:ep` (e.g. `ort:cpu`). Empty: no gains.
    pub baseline: String,
}

/// One named sweep: the plan's axes and protocol overrides.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SweepConfig {
    /// Model names from the manifest, or one named set (`quick`, `paper`) as `"@quick"`.
    pub models: Vec<String>,
    pub batches: Vec<u32>,
    /// Backend: `ort` or `tflite`.
    pub backend: String,
    /// Execution providers (ort) to sweep: `cpu`, `cuda`, `tensorrt`, `xnnpack`, `openvino`, `acl`, ...
    pub eps: Vec<String>,
    /// TFLite delegate: empty (CPU) or `edgetpu`.
    pub delegate: String,
    /// Intra-op thread counts to sweep (0: runtime default).
    pub threads: Vec<u32>,
    /// Precisions: `fp32`, `fp16` (TensorRT), `int8` (the `_int8` model variants).
    pub precisions: Vec<String>,
    // Protocol overrides (absent: the global `[protocol]` value).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup_runs: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_runs: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_rel_ci: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shuffle: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed_batch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cooldown_max_temp_c: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cooldown_max_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub knee_fraction: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ci_target_stat: Option<crate::bench::stats::CiStat>,
}

impl Default for SweepConfig {
    fn default() -> Self {
        Self {
            models: vec!["@quick".into()],
            batches: vec![1, 2, 4, 8, 16],
            backend: "ort".into(),
            eps: vec!["cpu".into()],
            delegate: String::new(),
            threads: vec![0],
            precisions: vec!["fp32".into()],
            warmup_runs: None,
            warmup_s: None,
            min_runs: None,
            min_s: None,
            max_s: None,
            target_rel_ci: None,
            seed: None,
            shuffle: None,
            fixed_batch: None,
            cooldown_max_temp_c: None,
            cooldown_max_s: None,
            knee_fraction: None,
            ci_target_stat: None,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        let mut sweeps = BTreeMap::new();
        // Built-in sweeps carry no protocol overrides, so a user's [protocol] applies to them.
        sweeps.insert("quick".to_string(), SweepConfig::default());
        sweeps.insert(
            "paper".to_string(),
            SweepConfig {
                models: vec!["@paper".into()],
                batches: vec![1, 2, 4, 8, 16, 32],
                precisions: vec!["fp32".into(), "int8".into()],
                ..SweepConfig::default()
            },
        );
        Self {
            device: DeviceConfig::default(),
            models: ModelsConfig::default(),
            onnxruntime: OnnxRuntimeConfig::default(),
            tflite: TfliteConfig::default(),
            cuda: CudaConfig::default(),
            tensorrt: TensorRtConfig::default(),
            xnnpack: XnnpackConfig::default(),
            acl: AclConfig::default(),
            protocol: ProtocolConfig::default(),
            telemetry: TelemetryConfig::default(),
            mqtt: MqttConfig::default(),
            store: StoreConfig::default(),
            schedule: ScheduleConfig::default(),
            commands: CommandsConfig::default(),
            report: ReportConfig::default(),
            batch_search: Default::default(),
            watchdog: Default::default(),
            collect: Default::default(),
            homeassistant: Default::default(),
            sweeps,
        }
    }
}

/// Where the merged configuration came from, for messages and `check-config`.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub file: Option<PathBuf>,
    pub env_vars: Vec<String>,
    /// `--set` overrides given on the command line.
    pub sets: Vec<String>,
}

/// Loads the layered configuration. `file`: an explicit `--config` (must exist);
/// `None` reads [`SYSTEM_CONFIG`] when present.
pub fn load(file: Option<&Path>) -> Result<(Config, Sources)> {
    load_layers(file, std::env::vars(), &[])
}

/// [`load`] plus `--set section.key=value` overrides from the command line, the
/// highest layer.
pub fn load_with_overrides(file: Option<&Path>, sets: &[String]) -> Result<(Config, Sources)> {
    load_layers(file, std::env::vars(), sets)
}

/// [`load`] with the environment given (tests pass their own).
pub fn load_with_env(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(Config, Sources)> {
    load_layers(file, env, &[])
}

fn load_layers(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    sets: &[String],
) -> Result<(Config, Sources)> {
    let mut sources = Sources::default();
    let mut builder = config::Config::builder();

    let path = match file {
        Some(p) => {
            if !p.exists() {
                bail!("config file {} does not exist", p.display());
            }
            Some(p.to_path_buf())
        }
        None => Some(PathBuf::from(SYSTEM_CONFIG)).filter(|p| p.exists()),
    };
    if let Some(p) = &path {
        let text = std::fs::read_to_string(p)
            .with_context(|| format!("cannot read config file {}", p.display()))?;
        // Check this layer alone so an error names the file.
        let layer: toml::Value = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: invalid TOML: {}", p.display(), e.message()))?;
        check_layer(&layer, &p.display().to_string())?;
        builder = builder.add_source(config::File::from_str(&text, config::FileFormat::Toml));
        sources.file = Some(p.clone());
    }

    // Environment: EDGEBENCH__SECTION__KEY[__SUBKEY]. Each variable is checked alone.
    let mut env_pairs: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}__")))
        .collect();
    env_pairs.sort();
    for (k, v) in &env_pairs {
        let path: Vec<String> = k[ENV_PREFIX.len() + 2..]
            .split("__")
            .map(|s| s.to_ascii_lowercase())
            .collect();
        if path.iter().any(|s| s.is_empty()) {
            bail!("environment variable {k}: empty key segment");
        }
        builder = override_layer(builder, &path, v, &format!("environment variable {k}"))?;
        sources.env_vars.push(k.clone());
    }

    // Command line: --set section.key=value.
    for s in sets {
        let (k, v) = s
            .split_once('=')
            .with_context(|| format!("--set {s}: expected section.key=value"))?;
        let path: Vec<String> = k.trim().split('.').map(|p| p.trim().to_string()).collect();
        if path.iter().any(|p| p.is_empty()) {
            bail!("--set {s}: empty key segment");
        }
        builder = override_layer(builder, &path, v.trim(), &format!("--set {s}"))?;
        sources.sets.push(s.clone());
    }

    let merged: Config = builder
        .build()
        .context("cannot merge configuration layers")?
        .try_deserialize()
        .context("invalid configuration")?;
    merged.validate()?;
    Ok((merged, sources))
}

/// Checks one `path = value` override alone (so errors name `source`) and adds it.
fn override_layer(
    builder: config::ConfigBuilder<config::builder::DefaultState>,
    path: &[String],
    raw: &str,
    source: &str,
) -> Result<config::ConfigBuilder<config::builder::DefaultState>> {
    let value = env_value(raw);
    let mut layer = value.clone();
    for seg in path.iter().rev() {
        let mut t = toml::map::Map::new();
        t.insert(seg.clone(), layer);
        layer = toml::Value::Table(t);
    }
    check_layer(&layer, source)?;
    Ok(builder.set_override(path.join("."), toml_to_config(&value))?)
}

/// Environment values are TOML when they parse as a TOML value (numbers, booleans,
/// arrays), else plain strings.
fn env_value(v: &str) -> toml::Value {
    let doc = format!("v = {v}");
    match toml::from_str::<toml::Table>(&doc) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(v.to_string())),
        Err(_) => toml::Value::String(v.to_string()),
    }
}

fn toml_to_config(v: &toml::Value) -> config::Value {
    use config::{Value, ValueKind};
    let kind = match v {
        toml::Value::String(s) => ValueKind::String(s.clone()),
        toml::Value::Integer(i) => ValueKind::I64(*i),
        toml::Value::Float(f) => ValueKind::Float(*f),
        toml::Value::Boolean(b) => ValueKind::Boolean(*b),
        toml::Value::Datetime(d) => ValueKind::String(d.to_string()),
        toml::Value::Array(a) => ValueKind::Array(a.iter().map(toml_to_config).collect()),
        toml::Value::Table(t) => ValueKind::Table(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_config(v)))
                .collect(),
        ),
    };
    Value::new(None, kind)
}

/// Deserialises one layer alone into [`Config`] (every key has a default, so only
/// unknown or mistyped keys fail) and names `source` in the error.
fn check_layer(layer: &toml::Value, source: &str) -> Result<()> {
    let text = toml::to_string(layer).unwrap_or_default();
    if let Err(e) = toml::from_str::<Config>(&text) {
        let msg = e.message().trim().to_string();
        let key = key_path_of(layer, &msg);
        match key {
            Some(k) => bail!("{source}: key `{k}`: {msg}"),
            None => bail!("{source}: {msg}"),
        }
    }
    Ok(())
}

/// Best effort: find the dotted path of the key an error message complains about.
fn key_path_of(layer: &toml::Value, msg: &str) -> Option<String> {
    let name = msg.split('`').nth(1)?;
    fn walk(v: &toml::Value, name: &str, prefix: &str) -> Option<String> {
        if let toml::Value::Table(t) = v {
            for (k, child) in t {
                let here = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                if k == name {
                    return Some(here);
                }
                if let Some(found) = walk(child, name, &here) {
                    return Some(found);
                }
            }
        }
        None
    }
    walk(layer, name, "")
}

impl Config {
    /// Cross-field checks, with the key named.
    pub fn validate(&self) -> Result<()> {
        self.protocol.validate("protocol")?;
        self.batch_search.validate("batch_search")?;
        self.watchdog.validate()?;
        crate::store::Limits::from_config(&self.store)?;
        self.homeassistant.validate().map_err(anyhow::Error::msg)?;
        if !self.device.id.is_empty() {
            validate_device_id(&self.device.id).context("device.id")?;
        }
        if !(self.telemetry.rate_hz > 0.0 && self.telemetry.rate_hz <= 1000.0) {
            bail!(
                "telemetry.rate_hz must be in (0, 1000], got {}",
                self.telemetry.rate_hz
            );
        }
        if !(0.0..1.0).contains(&self.telemetry.freq_drop_fraction) {
            bail!("telemetry.freq_drop_fraction must be in [0, 1)");
        }
        crate::backend::types::DeviceSelector::parse(&self.tflite.edgetpu_device)
            .map_err(anyhow::Error::msg)?;
        match self.onnxruntime.io.as_str() {
            "host" | "device" => {}
            other => bail!("onnxruntime.io: unknown value `{other}` (host, device)"),
        }
        match self.onnxruntime.graph_optimization.as_str() {
            "disable" | "basic" | "extended" | "all" => {}
            other => bail!(
                "onnxruntime.graph_optimization: unknown level `{other}` (disable, basic, extended, all)"
            ),
        }
        match self.cuda.cudnn_conv_algo_search.as_str() {
            "exhaustive" | "heuristic" | "default" => {}
            other => bail!(
                "cuda.cudnn_conv_algo_search: unknown value `{other}` (exhaustive, heuristic, default)"
            ),
        }
        if self.mqtt.telemetry_interval_s < 0.0 || !self.mqtt.telemetry_interval_s.is_finite() {
            bail!("mqtt.telemetry_interval_s must be >= 0");
        }
        if self.mqtt.backoff_min_s <= 0.0 || self.mqtt.backoff_max_s < self.mqtt.backoff_min_s {
            bail!("mqtt.backoff_min_s must be > 0 and <= mqtt.backoff_max_s");
        }
        if self.mqtt.topic_prefix.is_empty()
            || self.mqtt.topic_prefix.contains(['#', '+'])
            || self.mqtt.topic_prefix.ends_with('/')
        {
            bail!(
                "mqtt.topic_prefix `{}` must be non-empty, without wildcards or a trailing /",
                self.mqtt.topic_prefix
            );
        }
        if !self.schedule.on_boot.is_empty() && !self.sweeps.contains_key(&self.schedule.on_boot) {
            bail!(
                "schedule.on_boot names sweep `{}`, which is not defined under [sweeps]",
                self.schedule.on_boot
            );
        }
        if !self.schedule.sweep.is_empty() && !self.sweeps.contains_key(&self.schedule.sweep) {
            bail!(
                "schedule.sweep names sweep `{}`, which is not defined under [sweeps]",
                self.schedule.sweep
            );
        }
        for (name, s) in &self.sweeps {
            s.validate(&format!("sweeps.{name}"), &self.protocol)?;
        }
        Ok(())
    }

    /// A sweep by name, with a clear error listing the defined ones.
    pub fn sweep(&self, name: &str) -> Result<&SweepConfig> {
        self.sweeps.get(name).with_context(|| {
            let names: Vec<&str> = self.sweeps.keys().map(String::as_str).collect();
            format!(
                "no sweep named `{name}` in the configuration (defined: {})",
                names.join(", ")
            )
        })
    }
}

impl SweepConfig {
    /// Range checks of the plan's axes.
    pub fn validate(&self, at: &str, protocol: &ProtocolConfig) -> Result<()> {
        validate_batches(&self.batches).with_context(|| format!("{at}.batches"))?;
        validate_threads(&self.threads).with_context(|| format!("{at}.threads"))?;
        if self.models.is_empty() {
            bail!("{at}.models is empty");
        }
        match self.backend.as_str() {
            "ort" => {
                if self.eps.is_empty() {
                    bail!("{at}.eps is empty");
                }
            }
            "tflite" => {}
            other => bail!("{at}.backend: unknown backend `{other}` (ort, tflite)"),
        }
        match self.delegate.as_str() {
            "" | "edgetpu" => {}
            other => bail!("{at}.delegate: unknown delegate `{other}` (edgetpu)"),
        }
        for p in &self.precisions {
            match p.as_str() {
                "fp32" | "fp16" | "int8" => {}
                other => bail!("{at}.precisions: unknown precision `{other}` (fp32, fp16, int8)"),
            }
        }
        protocol.with(self).validate(at)
    }
}

/// Batch sizes: non-empty, each in 1..=MAX_BATCH, no duplicates.
pub fn validate_batches(b: &[u32]) -> Result<()> {
    if b.is_empty() {
        bail!("no batch sizes given");
    }
    for &x in b {
        if x == 0 {
            bail!("batch size 0 is not allowed (batch sizes start at 1)");
        }
        if x > MAX_BATCH {
            bail!("batch size {x} is above the limit of {MAX_BATCH}");
        }
    }
    let mut s = b.to_vec();
    s.sort_unstable();
    s.dedup();
    if s.len() != b.len() {
        bail!("batch sizes repeat a value: {b:?}");
    }
    Ok(())
}

/// Thread counts: non-empty, each <= MAX_THREADS (0 = runtime default).
pub fn validate_threads(t: &[u32]) -> Result<()> {
    if t.is_empty() {
        bail!("no thread counts given");
    }
    if let Some(x) = t.iter().find(|&&x| x > MAX_THREADS) {
        bail!("thread count {x} is above the limit of {MAX_THREADS}");
    }
    Ok(())
}

/// Device ids go into MQTT topics: `[a-z0-9-]`, 1..=64 chars.
pub fn validate_device_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > 64 {
        bail!("device id must be 1 to 64 characters, got {}", id.len());
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        bail!("device id `{id}` has `{c}`; only a-z, 0-9 and - are allowed");
    }
    Ok(())
}

/// A device id from a hostname: lower-cased, other characters turned into `-`.
pub fn device_id_from_hostname(host: &str) -> String {
    let mut s: String = host
        .trim()
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    s.truncate(64);
    let s = s.trim_matches('-').to_string();
    if s.is_empty() {
        "edgebench".into()
    } else {
        s
    }
}

/// `<hostname id>-<machine hash>` (at most 64 characters), or the hostname id alone.
pub fn default_device_id(host: &str, machine: Option<&str>) -> String {
    let mut id = device_id_from_hostname(host);
    if let Some(h) = machine {
        id.truncate(63 - h.len());
        id = format!("{}-{h}", id.trim_end_matches('-'));
    }
    id
}

impl Config {
    /// The effective device id: `device.id`, else the hostname followed by a hash of
    /// the machine id under `telemetry.sysroot` (boards flashed from one image share
    /// a hostname, not a machine id), else the hostname alone.
    pub fn device_id(&self) -> String {
        if !self.device.id.is_empty() {
            return self.device.id.clone();
        }
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default();
        let machine = crate::mqtt::identity::machine_hash(Path::new(&self.telemetry.sysroot));
        default_device_id(&host, machine.as_deref())
    }

    /// The effective store directory.
    pub fn store_dir(&self) -> PathBuf {
        if !self.store.dir.is_empty() {
            return PathBuf::from(&self.store.dir);
        }
        match std::env::var_os("STATE_DIRECTORY") {
            Some(d) if !d.is_empty() => PathBuf::from(d),
            _ => PathBuf::from("/var/lib/edgebench"),
        }
    }
}

/// The documented default configuration (`edgebench generate-config`).
pub fn generate_default() -> String {
    include_str!("../configs/edgebench.toml").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let p = dir.path().join("c.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn generated_default_parses_to_the_defaults() {
        let cfg: Config = toml::from_str(&generate_default()).expect("generated config parses");
        assert_eq!(cfg, Config::default());
    }

    #[test]
    fn unknown_key_names_key_and_file() {
        let d = tempfile::tempdir().unwrap();
        let p = write(&d, "[protocol]\nwarmup_runz = 3\n");
        let e = format!("{:#}", load_with_env(Some(&p), vec![]).unwrap_err());
        assert!(e.contains("protocol.warmup_runz"), "{e}");
        assert!(e.contains(&p.display().to_string()), "{e}");
    }

    #[test]
    fn unknown_env_key_names_the_variable() {
        let e =
            load_with_env(None, vec![("EDGEBENCH__MQTT__HOTS".into(), "x".into())]).unwrap_err();
        let e = format!("{e:#}");
        assert!(e.contains("EDGEBENCH__MQTT__HOTS"), "{e}");
        assert!(e.contains("hots"), "{e}");
    }

    #[test]
    fn env_overrides_file() {
        let d = tempfile::tempdir().unwrap();
        let p = write(&d, "[mqtt]\nhost = \"a\"\nport = 1\n");
        let (c, s) = load_with_env(
            Some(&p),
            vec![
                ("EDGEBENCH__MQTT__PORT".into(), "1884".into()),
                ("OTHER".into(), "1".into()),
            ],
        )
        .unwrap();
        assert_eq!(c.mqtt.host, "a");
        assert_eq!(c.mqtt.port, 1884);
        assert_eq!(s.env_vars, vec!["EDGEBENCH__MQTT__PORT".to_string()]);
    }

    #[test]
    fn wrong_type_is_reported_with_source() {
        let d = tempfile::tempdir().unwrap();
        let p = write(&d, "[mqtt]\nport = \"high\"\n");
        let e = format!("{:#}", load_with_env(Some(&p), vec![]).unwrap_err());
        assert!(e.contains(&p.display().to_string()), "{e}");
    }

    #[test]
    fn command_line_sets_win_and_are_checked() {
        let (c, s) = load_layers(
            None,
            vec![("EDGEBENCH__CUDA__DEVICE_ID".into(), "1".into())],
            &["cuda.device_id=2".into(), "tensorrt.fp16=true".into()],
        )
        .unwrap();
        assert_eq!(c.cuda.device_id, 2);
        assert!(c.tensorrt.fp16);
        assert_eq!(s.sets.len(), 2);
        let e = format!(
            "{:#}",
            load_layers(None, vec![], &["cuda.devic_id=2".into()]).unwrap_err()
        );
        assert!(
            e.contains("--set cuda.devic_id=2") && e.contains("cuda.devic_id"),
            "{e}"
        );
        assert!(load_layers(None, vec![], &["nokey".into()]).is_err());
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        let e = load_with_env(Some(Path::new("/nonexistent/x.toml")), vec![]).unwrap_err();
        assert!(format!("{e}").contains("/nonexistent/x.toml"));
    }

    #[test]
    fn sweep_overrides_and_batch_checks() {
        let d = tempfile::tempdir().unwrap();
        let p = write(&d, "[sweeps.mine]\nmodels=[\"a\"]\nbatches=[1,0]\n");
        let e = format!("{:#}", load_with_env(Some(&p), vec![]).unwrap_err());
        assert!(
            e.contains("sweeps.mine.batches") && e.contains("batch size 0"),
            "{e}"
        );
        let p = write(
            &d,
            "[sweeps.mine]\nmodels=[\"a\"]\nbatches=[1,2]\nmin_runs = 7\n",
        );
        let (c, _) = load_with_env(Some(&p), vec![]).unwrap();
        assert_eq!(c.protocol.with(&c.sweeps["mine"]).min_runs, 7);
    }

    #[test]
    fn device_ids() {
        assert!(validate_device_id("jetson-01").is_ok());
        assert!(validate_device_id("Jetson").is_err());
        assert!(validate_device_id("a/b").is_err());
        assert_eq!(device_id_from_hostname("My_Board.local"), "my-board-local");
        assert_eq!(
            default_device_id("My_Board.local", Some("0a1b2c3d")),
            "my-board-local-0a1b2c3d"
        );
        assert_eq!(default_device_id("pi", None), "pi");
        let long = default_device_id(&"x".repeat(100), Some("0a1b2c3d"));
        assert!(long.len() <= 64 && long.ends_with("-0a1b2c3d"), "{long}");
        validate_device_id(&long).unwrap();
    }
}
