//! Jetson INA3221 power rails and the per-board table of which rails make board power.
//!
//! - JetPack 5+ (L4T >= 34): mainline `ina3221` hwmon driver under
//!   `/sys/bus/i2c/drivers/ina3221/<bus-addr>/hwmon/hwmonN/`: `inN_label`, `inN_input`
//!   (mV), `currN_input` (mA), `currN_{max,crit}_alarm`. Channels 1..=3 are the chip's
//!   three inputs; channel 7 is the sum of shunt voltages and is skipped, and so are
//!   unconnected inputs labelled `NC`.
//! - JetPack 4 (L4T 32): NVIDIA's `ina3221x` iio driver under
//!   `/sys/bus/i2c/drivers/ina3221x/<bus-addr>/iio:deviceN/`: `rail_name_N`,
//!   `in_powerN_input` (mW), channels from 0.
//!
//! Power is W: mV·mA/1e6 (JP5+), mW/1e3 (JP4).

use std::time::{Duration, Instant};

use super::sensor::{Radix, Sensor};
use super::sysroot::{suffix_number, SysRoot};

const HWMON_DRIVER: &str = "/sys/bus/i2c/drivers/ina3221";
const IIO_DRIVER: &str = "/sys/bus/i2c/drivers/ina3221x";

/// Which rails sum to board power on one module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RailTable {
    /// Board id the table belongs to (also the `[device] rail_table` value).
    pub board: &'static str,
    /// Rails summed into board power; non-overlapping.
    pub rails: &'static [&'static str],
    /// What the sum covers.
    pub scope: &'static str,
}

/// Per-module rail tables (energymon `jetson/JetsonPowerRails.md` and
/// `jetson/README.md`; Orin NX / Nano from tegrastats samples).
pub const RAIL_TABLES: &[RailTable] = &[
    RailTable {
        board: "jetson-tx1",
        rails: &["VDD_IN"],
        scope: "module input",
    },
    RailTable {
        board: "jetson-nano",
        rails: &["POM_5V_IN"],
        scope: "module input",
    },
    RailTable {
        board: "jetson-tx2",
        rails: &["VDD_IN"],
        scope: "module input",
    },
    RailTable {
        board: "jetson-tx2-nx",
        rails: &["VDD_IN"],
        scope: "module input",
    },
    RailTable {
        board: "jetson-xavier-nx",
        rails: &["VDD_IN"],
        scope: "module input",
    },
    // No total rail on AGX Xavier: the six module rails.
    RailTable {
        board: "jetson-agx-xavier",
        rails: &["GPU", "CPU", "SOC", "CV", "VDDRQ", "SYS5V"],
        scope: "sum of module rails",
    },
    // No total rail on AGX Orin, and VIN_SYS_5V0 feeds VDDQ_VDD2_1V8AO: summing every
    // rail (jtop's fallback) counts the memory rail twice.
    RailTable {
        board: "jetson-agx-orin",
        rails: &["VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0"],
        scope: "sum of module rails",
    },
    RailTable {
        board: "jetson-orin-nx",
        rails: &["VDD_IN"],
        scope: "module input",
    },
    RailTable {
        board: "jetson-orin-nano",
        rails: &["VDD_IN"],
        scope: "module input",
    },
];

/// Rails that are a module's total input wherever they appear.
const TOTAL_RAILS: &[&str] = &["VDD_IN", "POM_5V_IN"];

/// The table for a board id.
pub fn rail_table(board: &str) -> Option<&'static RailTable> {
    RAIL_TABLES.iter().find(|t| t.board == board)
}

/// Rails chosen for board power.
#[derive(Debug, Clone, PartialEq)]
pub struct BoardPower {
    /// Indices into the discovered rails.
    pub rails: Vec<usize>,
    /// `VDD_IN` or `VDD_GPU_SOC+VDD_CPU_CV+VIN_SYS_5V0`.
    pub scope: String,
    /// Where the choice came from (`table jetson-agx-orin`, `total rail`, `config`).
    pub source: String,
}

/// Picks the rails that make board power.
///
/// `wanted`: the `[device] rail_table` setting: a table name, or rail names joined by
/// `+`; empty means the table of `board`. Without a table, a total rail (`VDD_IN`,
/// `POM_5V_IN`) is used when present; otherwise board power is not reported rather than
/// summing rails that may overlap.
pub fn board_power(board: &str, wanted: &str, found: &[&str]) -> Option<BoardPower> {
    let pick = |names: &[&str], source: String| -> Option<BoardPower> {
        let idx: Option<Vec<usize>> = names
            .iter()
            .map(|n| found.iter().position(|f| f == n))
            .collect();
        match idx {
            Some(rails) if !rails.is_empty() => Some(BoardPower {
                rails,
                scope: names.join("+"),
                source,
            }),
            _ => {
                log::warn!(
                    "telemetry: rail table ({source}) needs {}, this board has {}: board power not reported",
                    names.join(", "),
                    if found.is_empty() { "no rails".to_string() } else { found.join(", ") }
                );
                None
            }
        }
    };
    let wanted = wanted.trim();
    if !wanted.is_empty() {
        if let Some(t) = rail_table(wanted) {
            return pick(t.rails, format!("table {}", t.board));
        }
        let names: Vec<&str> = wanted.split('+').map(str::trim).collect();
        return pick(&names, "config".to_string());
    }
    if found.is_empty() {
        return None;
    }
    if let Some(t) = rail_table(board) {
        return pick(t.rails, format!("table {}", t.board));
    }
    let total = TOTAL_RAILS.iter().find(|t| found.contains(t))?;
    pick(&[total], "total rail".to_string())
}

/// A label naming an unconnected input: `NC` as a whole word.
pub fn is_unconnected(label: &str) -> bool {
    label
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|w| w == "NC")
}

/// One INA3221 input.
#[derive(Debug)]
pub struct Rail {
    pub name: String,
    /// `ina3221` (JP5+ hwmon) or `ina3221x` (JP4 iio).
    pub driver: &'static str,
    /// I2C `bus-address`, e.g. `1-0040`.
    pub address: String,
    /// The chip's `update_interval` (JP5+ hwmon), zero when not exported.
    pub update_interval: Duration,
    source: Source,
    /// `currN_max_alarm`, `currN_crit_alarm` (JP5+): over-current, which makes the
    /// module throttle.
    alarms: Vec<Sensor>,
}

#[derive(Debug)]
enum Source {
    Hwmon { mv: Sensor, ma: Sensor },
    Iio { mw: Sensor },
}

impl Rail {
    /// Power in W.
    pub fn read_w(&mut self, now: Instant) -> Option<f64> {
        match &mut self.source {
            Source::Hwmon { mv, ma } => {
                let v = mv.read(now)?;
                let i = ma.read(now)?;
                Some(v as f64 * i as f64 / 1e6)
            }
            Source::Iio { mw } => mw.read(now).map(|p| p as f64 / 1e3),
        }
    }

    /// True if an over-current alarm is raised now; None without alarm files.
    pub fn read_alarm(&mut self, now: Instant) -> Option<bool> {
        if self.alarms.is_empty() {
            return None;
        }
        let mut any = false;
        for a in &mut self.alarms {
            any |= a.read(now).is_some_and(|v| v != 0);
        }
        Some(any)
    }
}

/// Finds INA3221 rails (both driver generations).
pub fn discover(root: &SysRoot) -> Vec<Rail> {
    let mut out = Vec::new();
    for addr in root.list(HWMON_DRIVER) {
        let dev = format!("{HWMON_DRIVER}/{addr}");
        for hw in root.list(&format!("{dev}/hwmon")) {
            if suffix_number(&hw, "hwmon").is_none() {
                continue;
            }
            let dir = format!("{dev}/hwmon/{hw}");
            let interval = root
                .read_i64(&format!("{dir}/update_interval"))
                .filter(|ms| *ms > 0)
                .map(|ms| Duration::from_millis(ms as u64))
                .unwrap_or(Duration::ZERO);
            // The chip has three inputs; in7 is the shunt-voltage sum.
            for ch in 1..=3 {
                let Ok(label) = root.read_string(&format!("{dir}/in{ch}_label")) else {
                    continue;
                };
                if label.is_empty() || is_unconnected(&label) {
                    continue;
                }
                let mv = format!("{dir}/in{ch}_input");
                let ma = format!("{dir}/curr{ch}_input");
                if !root.exists(&mv) || !root.exists(&ma) {
                    continue;
                }
                let alarms = ["max", "crit"]
                    .iter()
                    .filter_map(|k| {
                        root.sensor_if_exists(&format!("{dir}/curr{ch}_{k}_alarm"), Radix::Decimal)
                    })
                    .collect();
                out.push(Rail {
                    name: label,
                    driver: "ina3221",
                    address: addr.clone(),
                    update_interval: interval,
                    source: Source::Hwmon {
                        mv: root.sensor(&mv, Radix::Decimal, interval),
                        ma: root.sensor(&ma, Radix::Decimal, interval),
                    },
                    alarms,
                });
            }
        }
    }
    for addr in root.list(IIO_DRIVER) {
        let dev = format!("{IIO_DRIVER}/{addr}");
        for iio in root.list(&dev) {
            if suffix_number(&iio, "iio:device").is_none() {
                continue;
            }
            let dir = format!("{dev}/{iio}");
            for ch in 0..3 {
                let Ok(label) = root.read_string(&format!("{dir}/rail_name_{ch}")) else {
                    continue;
                };
                if label.is_empty() || is_unconnected(&label) {
                    continue;
                }
                let mw = format!("{dir}/in_power{ch}_input");
                if !root.exists(&mw) {
                    continue;
                }
                out.push(Rail {
                    name: label,
                    driver: "ina3221x",
                    address: addr.clone(),
                    update_interval: Duration::ZERO,
                    source: Source::Iio {
                        mw: root.sensor(&mw, Radix::Decimal, Duration::ZERO),
                    },
                    alarms: Vec::new(),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nc_labels() {
        assert!(is_unconnected("NC"));
        assert!(!is_unconnected("VDD_SYNC"));
        assert!(!is_unconnected("VDD_IN"));
    }

    #[test]
    fn agx_orin_does_not_double_count_the_memory_rail() {
        let found = [
            "VDD_GPU_SOC",
            "VDD_CPU_CV",
            "VIN_SYS_5V0",
            "VDDQ_VDD2_1V8AO",
        ];
        let bp = board_power("jetson-agx-orin", "", &found).expect("power");
        assert_eq!(bp.rails, vec![0, 1, 2]);
        assert_eq!(bp.scope, "VDD_GPU_SOC+VDD_CPU_CV+VIN_SYS_5V0");
    }

    #[test]
    fn total_rail_tables_and_fallbacks() {
        let nx = ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"];
        assert_eq!(
            board_power("jetson-orin-nano", "", &nx).map(|b| b.rails),
            Some(vec![0])
        );
        // Unknown board: the total rail if there is one...
        let b = board_power("some-carrier", "", &nx).expect("total");
        assert_eq!((b.rails, b.source.as_str()), (vec![0], "total rail"));
        // ...and nothing rather than a sum that may overlap.
        assert_eq!(board_power("some-carrier", "", &["A", "B"]), None);
        // Config: a table name, or explicit rails.
        let b = board_power("x", "VDD_CPU_GPU_CV+VDD_SOC", &nx).expect("explicit");
        assert_eq!(b.rails, vec![1, 2]);
        assert_eq!(board_power("x", "jetson-agx-orin", &nx), None);
        let nano = ["POM_5V_IN", "POM_5V_GPU", "POM_5V_CPU"];
        assert_eq!(
            board_power("jetson-nano", "", &nano).map(|b| b.scope),
            Some("POM_5V_IN".to_string())
        );
    }
}
