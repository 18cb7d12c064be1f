//! Thermal and power telemetry (DESIGN.md section 7).
//!
//! Interface used by the runner. Probes read Linux interfaces under an injected
//! root; see the submodules. This file is the stable surface:
//! - [`Telemetry::open`] once per sweep (finds probes, identifies the board);
//! - [`Telemetry::hottest_temp_c`] for cool-down decisions;
//! - [`Telemetry::start_window`] / [`Window::finish`] around each timed phase, giving a
//!   [`WindowSummary`] that lands in the result record.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::TelemetryConfig;

/// Telemetry for one sweep.
pub struct Telemetry {
    sysroot: PathBuf,
    board: String,
}

impl Telemetry {
    /// Finds the probes under `cfg.sysroot`. `board_override` / `rail_table` come from
    /// `[device]` (empty: detect).
    pub fn open(cfg: &TelemetryConfig, board_override: &str, _rail_table: &str) -> Telemetry {
        let board = if board_override.is_empty() {
            "unknown".to_string()
        } else {
            board_override.to_string()
        };
        Telemetry {
            sysroot: PathBuf::from(&cfg.sysroot),
            board,
        }
    }

    /// Identified board name (e.g. `jetson-orin-nano`, `raspberry-pi-5`, `x86-64`).
    pub fn board(&self) -> &str {
        &self.board
    }

    /// The root probes read under.
    pub fn sysroot(&self) -> &std::path::Path {
        &self.sysroot
    }

    /// Hottest thermal zone now, °C (None: no readable zone).
    pub fn hottest_temp_c(&self) -> Option<f64> {
        None
    }

    /// CPU frequency governor of cpu0, if readable.
    pub fn governor(&self) -> Option<String> {
        None
    }

    /// Starts sampling for one timed window.
    pub fn start_window(&self) -> Window {
        Window { _private: () }
    }

    /// Waits until the hottest zone is below `max_temp_c` or `max_s` passed.
    pub fn cool_down(&self, _max_temp_c: f64, _max_s: f64) -> Cooldown {
        Cooldown {
            waited: Duration::ZERO,
            reached: self.hottest_temp_c().is_none(),
        }
    }
}

/// Result of a cool-down wait.
#[derive(Debug, Clone, Copy)]
pub struct Cooldown {
    pub waited: Duration,
    /// True when the temperature target was reached (or nothing to wait for).
    pub reached: bool,
}

/// Sampling in progress for one timed window.
pub struct Window {
    _private: (),
}

impl Window {
    /// Stops sampling. `samples` is the number of inferred samples (batch x calls),
    /// used for energy per sample.
    pub fn finish(self, _samples: u64) -> WindowSummary {
        WindowSummary::default()
    }
}

/// Telemetry of one timed window, as it goes into the result record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowSummary {
    pub temp_c_start: Option<f64>,
    pub temp_c_max: Option<f64>,
    pub temp_c_end: Option<f64>,
    /// None when no throttle signal is readable on this board.
    pub throttled: Option<bool>,
    /// Machine-readable reasons, e.g. `cpu_freq_below_cap`, `thermal_throttle_count`.
    pub throttle_reasons: Vec<String>,
    pub freq_mhz_min: Option<f64>,
    pub freq_mhz_cap: Option<f64>,
    pub power_w_mean: Option<f64>,
    pub energy_mj_per_sample: Option<f64>,
    /// Rails summed into power, e.g. `VDD_IN`.
    pub power_scope: Option<String>,
    pub power_sample_hz: Option<f64>,
}
