//! devfreq devices (`/sys/class/devfreq/*`: GPU, memory controller, NPU), kernel Hz
//! converted to MHz.
//!
//! The Jetson integrated GPU is the devfreq device whose device-tree node is named
//! `gp10b` (TX2), `gv11b` (Xavier), `ga10b` (Orin), `gb10b` or `gpu` (Nano's
//! `57000000.gpu`, JetPack 7 Orin): found by name, never by a hard-coded path (jtop's
//! `find_igpu`). Its load is the device's `load` file, per-mille, converted to %.

use std::time::{Duration, Instant};

use super::sensor::{Radix, Sensor};
use super::sysroot::SysRoot;

const CLASS: &str = "/sys/class/devfreq";

/// Device-tree node names of Jetson integrated GPUs.
pub const GPU_NODE_NAMES: &[&str] = &["gp10b", "gv11b", "ga10b", "gb10b", "gpu"];

/// One devfreq device.
#[derive(Debug)]
pub struct Devfreq {
    /// Directory name, e.g. `17000000.ga10b`.
    pub name: String,
    /// Device-tree node name of the parent device, if any.
    pub node: Option<String>,
    /// True for the integrated GPU.
    pub gpu: bool,
    pub governor: Option<String>,
    pub min_mhz: Option<f64>,
    cur: Sensor,
    max: Sensor,
    load: Option<Sensor>,
}

impl Devfreq {
    /// Current frequency, MHz.
    pub fn read_cur_mhz(&mut self, now: Instant) -> Option<f64> {
        self.cur.read(now).map(hz_to_mhz)
    }

    /// Current cap (`max_freq`), MHz; lowered by thermal cooling or power modes.
    pub fn read_max_mhz(&mut self, now: Instant) -> Option<f64> {
        self.max.read(now).map(hz_to_mhz)
    }

    /// Load in % (kernel: per-mille), GPU only.
    pub fn read_load_pct(&mut self, now: Instant) -> Option<f64> {
        self.load.as_mut()?.read(now).map(|v| v as f64 / 10.0)
    }

    pub fn cur_sensor(&self) -> &Sensor {
        &self.cur
    }

    /// Key for flat records: `gpu` for the GPU, else the device name slug.
    pub fn key(&self) -> String {
        if self.gpu {
            "gpu".to_string()
        } else {
            super::sysroot::slug(&self.name)
        }
    }
}

/// Hz (devfreq) to MHz.
pub fn hz_to_mhz(v: i64) -> f64 {
    v as f64 / 1e6
}

/// Finds devfreq devices; at most one is marked as the GPU.
pub fn discover(root: &SysRoot) -> Vec<Devfreq> {
    let mut out = Vec::new();
    let mut have_gpu = false;
    for name in root.list(CLASS) {
        let dir = format!("{CLASS}/{name}");
        if !root.exists(&format!("{dir}/cur_freq")) {
            continue;
        }
        let node = root.read_string(&format!("{dir}/device/of_node/name")).ok();
        let gpu = !have_gpu && node.as_deref().is_some_and(|n| GPU_NODE_NAMES.contains(&n));
        have_gpu |= gpu;
        let load = if gpu {
            root.sensor_if_exists(&format!("{dir}/device/load"), Radix::Decimal)
        } else {
            None
        };
        out.push(Devfreq {
            governor: root.read_string(&format!("{dir}/governor")).ok(),
            min_mhz: root.read_i64(&format!("{dir}/min_freq")).map(hz_to_mhz),
            cur: root.sensor(&format!("{dir}/cur_freq"), Radix::Decimal, Duration::ZERO),
            max: root.sensor(&format!("{dir}/max_freq"), Radix::Decimal, Duration::ZERO),
            load,
            node,
            gpu,
            name,
        });
    }
    out
}
