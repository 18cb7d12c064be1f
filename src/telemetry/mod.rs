//! Thermal and power telemetry (DESIGN.md section 7).
//!
//! Probes read Linux interfaces directly under an injected root ([`SysRoot`]): one file
//! per family (thermal, cpufreq, hwmon, devfreq, jetson, coral, rpi). Units are
//! converted once, at the reader; offline or unreadable values are absent.
//!
//! The runner's surface:
//! - [`Telemetry::open`] once per sweep (finds probes, identifies the board; never
//!   fails: a board with nothing readable gives empty summaries);
//! - [`Telemetry::hottest_temp_c`] / [`Telemetry::cool_down`] between configurations;
//! - [`Telemetry::start_window`] / [`Window::finish`] around each timed phase, giving a
//!   [`WindowSummary`] for the result record.
//!
//! The daemon's: [`Telemetry::snapshot`] (flat map for `<prefix>/telemetry`),
//! [`Telemetry::probes_found`] and [`Telemetry::board_info`] (for `info`).

pub mod board;
pub mod capture;
pub mod cli;
pub mod context;
pub mod coral;
pub mod cpufreq;
pub mod cpuload;
pub mod devfreq;
pub mod energy;
pub mod hwmon;
pub mod jetson;
pub mod probes;
pub mod rpi;
pub mod sampler;
pub mod sensor;
pub mod snapshot;
pub mod summary;
pub mod sysroot;
pub mod thermal;
pub mod throttle;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::TelemetryConfig;

pub use board::Board;
pub use probes::{Probes, Scrape};
pub use sysroot::SysRoot;

use summary::Accum;

/// How often cool-down re-reads the temperature.
const COOLDOWN_POLL: Duration = Duration::from_secs(1);

/// Telemetry for one sweep.
pub struct Telemetry {
    root: SysRoot,
    board: Board,
    probes: Arc<Mutex<Probes>>,
    period: Duration,
    freq_drop_fraction: f64,
    /// Previous snapshot's scrape, for "throttled since the last snapshot".
    last_snapshot: Mutex<Option<Scrape>>,
}

impl Telemetry {
    /// Finds the probes under `cfg.sysroot`. `board_override` / `rail_table` come from
    /// `[device]` (empty: detect / from the board).
    pub fn open(cfg: &TelemetryConfig, board_override: &str, rail_table: &str) -> Telemetry {
        Telemetry::open_root(SysRoot::new(&cfg.sysroot), cfg, board_override, rail_table)
    }

    /// Like [`Telemetry::open`] with a given root (a recording one for captures).
    pub fn open_root(
        root: SysRoot,
        cfg: &TelemetryConfig,
        board_override: &str,
        rail_table: &str,
    ) -> Telemetry {
        if !root.root().is_dir() {
            log::warn!(
                "telemetry: sysroot {} is not a directory; no telemetry",
                root.root().display()
            );
        }
        let board = board::detect(&root, board_override);
        let probes = if cfg.enabled {
            Probes::discover(
                &root,
                &probes::Options {
                    board: board.id.clone(),
                    rail_table: rail_table.to_string(),
                    rpi_get_throttled: cfg.rpi_get_throttled,
                },
            )
        } else {
            Probes::default()
        };
        let rate = if cfg.rate_hz.is_finite() && cfg.rate_hz > 0.0 {
            cfg.rate_hz.min(1000.0)
        } else {
            10.0
        };
        // Never faster than the power sensors refresh.
        let period = Duration::from_secs_f64(1.0 / rate).max(probes.min_period());
        Telemetry {
            root,
            board,
            probes: Arc::new(Mutex::new(probes)),
            period,
            freq_drop_fraction: cfg.freq_drop_fraction,
            last_snapshot: Mutex::new(None),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Probes> {
        self.probes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Identified board name (e.g. `jetson-orin-nano`, `raspberry-pi-5`, `x86-64`).
    pub fn board(&self) -> &str {
        &self.board.id
    }

    /// Everything known about the board (for `info`).
    pub fn board_info(&self) -> &Board {
        &self.board
    }

    /// The root probes read under.
    pub fn sysroot(&self) -> &std::path::Path {
        self.root.root()
    }

    /// The root itself (a recording root lists what was read).
    pub fn root(&self) -> &SysRoot {
        &self.root
    }

    /// Short descriptions of the probes found (for `info`).
    pub fn probes_found(&self) -> Vec<String> {
        self.lock().found()
    }

    /// Sampling period of timed windows: `1 / rate_hz`, or the power sensors' update
    /// interval when that is longer.
    pub fn sample_period(&self) -> Duration {
        self.period
    }

    /// Rails summed into board power, e.g. `VDD_IN`.
    pub fn power_scope(&self) -> Option<String> {
        self.lock().board_power.as_ref().map(|b| b.scope.clone())
    }

    /// Hottest thermal zone now, °C (None: no readable zone).
    pub fn hottest_temp_c(&self) -> Option<f64> {
        self.lock().hottest_c()
    }

    /// CPU frequency governor of cpu0, if readable.
    pub fn governor(&self) -> Option<String> {
        cpufreq::governor(&self.root, &self.lock().policies)
    }

    /// Runs `f` on the probes (for `probe` and tests).
    pub fn with_probes<R>(&self, f: impl FnOnce(&mut Probes) -> R) -> R {
        f(&mut self.lock())
    }

    /// Starts sampling for one timed window: scrapes once now (so `temp_c_start` is
    /// the temperature at the start), then every `1 / rate_hz` on a sampler thread.
    pub fn start_window(&self) -> Window {
        let (scrape, acc, empty) = {
            let mut p = self.lock();
            let empty = p.is_empty();
            let mut scrape = Scrape::for_probes(&p);
            let mut acc = Accum::new(&scrape, self.freq_drop_fraction);
            if !empty {
                p.scrape_into(&mut scrape);
                acc.push(&scrape);
            }
            (scrape, acc, empty)
        };
        let started = Instant::now();
        if empty {
            return Window {
                state: WindowState::Idle,
                probes: self.probes.clone(),
                power_scope: None,
                started,
            };
        }
        let power_scope = self.power_scope();
        let state = match sampler::start(
            self.probes.clone(),
            scrape.clone(),
            acc.clone(),
            self.period,
        ) {
            Ok(s) => WindowState::Sampling(s),
            Err(e) => {
                log::warn!(
                    "telemetry: cannot start the sampler thread ({e}); sampling window ends only"
                );
                WindowState::Ends(Box::new((scrape, acc)))
            }
        };
        Window {
            state,
            probes: self.probes.clone(),
            power_scope,
            started,
        }
    }

    /// Waits until the hottest zone is below `max_temp_c` or `max_s` passed.
    pub fn cool_down(&self, max_temp_c: f64, max_s: f64) -> Cooldown {
        let start = Instant::now();
        let limit = Duration::from_secs_f64(if max_s.is_finite() {
            max_s.max(0.0)
        } else {
            0.0
        });
        loop {
            let t = self.hottest_temp_c();
            let waited = start.elapsed();
            match t {
                None => {
                    return Cooldown {
                        waited,
                        reached: true,
                        temp_c: None,
                    }
                }
                Some(c) if c < max_temp_c => {
                    return Cooldown {
                        waited,
                        reached: true,
                        temp_c: Some(c),
                    }
                }
                Some(c) if waited >= limit => {
                    return Cooldown {
                        waited,
                        reached: false,
                        temp_c: Some(c),
                    }
                }
                Some(_) => std::thread::sleep(COOLDOWN_POLL.min(limit - waited)),
            }
        }
    }

    /// One scrape as a flat map for `<prefix>/telemetry` (keys in snapshot.rs).
    /// `throttled` reflects signals since the previous snapshot.
    pub fn snapshot(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut p = self.lock();
        let mut s = Scrape::for_probes(&p);
        if !p.is_empty() {
            p.scrape_into(&mut s);
        } else {
            s.wall_ms = snapshot::unix_ms();
        }
        let mut last = self.last_snapshot.lock().unwrap_or_else(|e| e.into_inner());
        let (throttled, reasons) =
            snapshot::throttled_between(last.as_ref(), &s, self.freq_drop_fraction);
        let map = snapshot::flat(&self.root, &self.board, &p, &s, throttled, &reasons);
        *last = Some(s);
        map
    }
}

/// Result of a cool-down wait.
#[derive(Debug, Clone, Copy)]
pub struct Cooldown {
    pub waited: Duration,
    /// True when the temperature target was reached (or nothing to wait for).
    pub reached: bool,
    /// Hottest zone at the end, °C.
    pub temp_c: Option<f64>,
}

enum WindowState {
    /// Nothing to sample on this board.
    Idle,
    Sampling(sampler::Sampler),
    /// No thread: only the start and end scrapes.
    Ends(Box<(Scrape, Accum)>),
}

/// Sampling in progress for one timed window.
pub struct Window {
    state: WindowState,
    probes: Arc<Mutex<Probes>>,
    power_scope: Option<String>,
    started: Instant,
}

impl Window {
    /// Stops sampling, scrapes once more (so `temp_c_end` is the temperature at the
    /// end) and summarises. `samples` is the number of inferred samples (batch x
    /// calls), used for energy per sample.
    pub fn finish(self, samples: u64) -> WindowSummary {
        let (mut scrape, mut acc) = match self.state {
            WindowState::Idle => return WindowSummary::default(),
            WindowState::Ends(b) => *b,
            WindowState::Sampling(s) => match s.stop() {
                Some(v) => v,
                None => {
                    log::warn!("telemetry: the sampler thread died; window not summarised");
                    return WindowSummary::default();
                }
            },
        };
        self.probes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .scrape_into(&mut scrape);
        acc.push(&scrape);
        log::debug!(
            "telemetry: window of {:.3} s, {} scrapes",
            self.started.elapsed().as_secs_f64(),
            acc.count()
        );
        acc.summarize(samples, self.power_scope.as_deref())
    }
}

/// Telemetry of one timed window, as it goes into the result record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowSummary {
    /// Hottest zone at the first scrape, °C.
    pub temp_c_start: Option<f64>,
    pub temp_c_max: Option<f64>,
    pub temp_c_end: Option<f64>,
    /// None when no throttle signal is readable on this board.
    pub throttled: Option<bool>,
    /// Machine-readable reasons, e.g. `cpu_freq_below_cap`, `thermal_throttle_count`
    /// (all names in throttle.rs).
    pub throttle_reasons: Vec<String>,
    /// Lowest frequency of the fastest CPU policy, MHz (the floor)...
    pub freq_mhz_min: Option<f64>,
    /// ...and the cap it is compared with, MHz.
    pub freq_mhz_cap: Option<f64>,
    /// Time-weighted mean board power, W (on-board estimate of `power_scope`).
    pub power_w_mean: Option<f64>,
    pub power_w_max: Option<f64>,
    /// Energy over the window, J (trapezoid over monotonic time).
    pub energy_j: Option<f64>,
    pub energy_mj_per_sample: Option<f64>,
    /// Rails summed into power, e.g. `VDD_IN`.
    pub power_scope: Option<String>,
    /// Achieved power sample rate, Hz.
    pub power_sample_hz: Option<f64>,
    /// How energy was obtained (`onboard-estimate:ina3221:trapezoid`).
    pub energy_method: Option<String>,
    /// Highest inferred Edge TPU clock-divider level (0: full clock).
    pub edgetpu_dfs_level_max: Option<u8>,
    /// Scrapes taken in the window.
    pub scrapes: u32,
    /// Seconds between the first and last scrape.
    pub window_s: Option<f64>,
}

impl WindowSummary {
    /// Reasons joined with `,` (the record's `throttle_reasons`), None when empty.
    pub fn reasons_csv(&self) -> Option<String> {
        (!self.throttle_reasons.is_empty()).then(|| self.throttle_reasons.join(","))
    }
}
