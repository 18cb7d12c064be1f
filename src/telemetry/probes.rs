//! Every probe found on the board, and one scrape of all of them.
//!
//! [`Probes::scrape_into`] fills a preallocated [`Scrape`]: one monotonic + wall
//! timestamp for the whole scrape, values already in SI-named units, no allocation.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::cpufreq::{self, CounterKind, Policy, ThrottleCounter};
use super::cpuload::CpuLoad;
use super::devfreq::{self, Devfreq};
use super::hwmon::{self, Device};
use super::jetson::{self, BoardPower, Rail};
use super::sysroot::SysRoot;
use super::thermal::{self, CoolingDevice, Zone};
use super::{coral, coral::EdgeTpu, rpi, rpi::RpiSignals};

/// All probes of one board.
#[derive(Debug, Default)]
pub struct Probes {
    pub zones: Vec<Zone>,
    pub cooling: Vec<CoolingDevice>,
    pub policies: Vec<Policy>,
    pub counters: Vec<ThrottleCounter>,
    pub hwmon: Vec<Device>,
    pub devfreq: Vec<Devfreq>,
    pub rails: Vec<Rail>,
    /// Rails making board power, when the board's table is satisfied.
    pub board_power: Option<BoardPower>,
    pub edge_tpus: Vec<EdgeTpu>,
    pub rpi: RpiSignals,
    /// `/proc/stat`, to tell busy CPUs from idle ones.
    pub load: Option<CpuLoad>,
}

/// Options for discovery.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Board id (picks the rail table).
    pub board: String,
    /// `[device] rail_table`: table name or `RAIL+RAIL`; empty: from the board.
    pub rail_table: String,
    /// Read the Raspberry Pi's deprecated `get_throttled` file.
    pub rpi_get_throttled: bool,
}

impl Probes {
    /// Finds every probe under `root`. Never fails: what is not there is left out.
    pub fn discover(root: &SysRoot, opts: &Options) -> Probes {
        let (zones, cooling) = thermal::discover(root);
        let rails = jetson::discover(root);
        let names: Vec<&str> = rails.iter().map(|r| r.name.as_str()).collect();
        let board_power = jetson::board_power(&opts.board, &opts.rail_table, &names);
        Probes {
            zones,
            cooling,
            policies: cpufreq::discover_policies(root),
            counters: cpufreq::discover_counters(root),
            hwmon: hwmon::discover(root),
            devfreq: devfreq::discover(root),
            board_power,
            rails,
            edge_tpus: coral::discover(root),
            rpi: rpi::discover(root, opts.rpi_get_throttled),
            load: CpuLoad::open(root),
        }
    }

    /// True when nothing at all was found.
    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
            && self.cooling.is_empty()
            && self.policies.is_empty()
            && self.counters.is_empty()
            && self.hwmon.is_empty()
            && self.devfreq.is_empty()
            && self.rails.is_empty()
            && self.edge_tpus.is_empty()
            && !self.rpi.present()
            && self.load.is_none()
    }

    /// Short names of what was found, e.g. `thermal: 9 zones`, for `info`.
    pub fn found(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.zones.is_empty() {
            out.push(format!("thermal: {} zones", self.zones.len()));
        }
        if !self.cooling.is_empty() {
            let kinds: Vec<&str> = self.cooling.iter().map(|c| c.kind.as_str()).collect();
            out.push(format!("cooling: {}", dedup_join(&kinds)));
        }
        if !self.policies.is_empty() {
            out.push(format!(
                "cpufreq: {} policies ({})",
                self.policies.len(),
                self.policies[0].cur_source
            ));
        }
        if !self.counters.is_empty() {
            out.push("x86 thermal_throttle counters".to_string());
        }
        if self.load.is_some() {
            out.push("cpu load: /proc/stat".to_string());
        }
        for d in &self.hwmon {
            if d.asleep {
                out.push(format!("hwmon: {} (asleep, not read)", d.name));
            } else {
                out.push(format!("hwmon: {} ({} channels)", d.name, d.channels.len()));
            }
        }
        for d in &self.devfreq {
            if d.gpu {
                out.push(format!("gpu: {} (devfreq)", d.name));
            } else {
                out.push(format!("devfreq: {}", d.name));
            }
        }
        if !self.rails.is_empty() {
            let names: Vec<&str> = self.rails.iter().map(|r| r.name.as_str()).collect();
            out.push(format!("{}: {}", self.rails[0].driver, names.join(", ")));
        }
        if let Some(bp) = &self.board_power {
            out.push(format!("board power: {}", bp.scope));
        }
        for t in &self.edge_tpus {
            out.push(format!("edgetpu: {}", t.name));
        }
        if self.rpi.present() {
            out.push(format!("rpi: {}", self.rpi.found().join(", ")));
        }
        out
    }

    /// Shortest sampling period the power sensors allow: the longest `update_interval`
    /// of the rails in board power (sampling faster only repeats their values).
    pub fn min_period(&self) -> Duration {
        let Some(bp) = &self.board_power else {
            return Duration::ZERO;
        };
        bp.rails
            .iter()
            .filter_map(|&i| self.rails.get(i))
            .map(|r| r.update_interval)
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// Hottest thermal zone now, °C (zones that count; hwmon temperatures of awake
    /// devices when the board has no thermal zones).
    pub fn hottest_c(&mut self) -> Option<f64> {
        let now = Instant::now();
        let mut hot = None;
        if self.zones.is_empty() {
            for d in &mut self.hwmon {
                let mut vals = vec![None; d.channels.len()];
                d.read_into(now, &mut vals);
                for (v, ch) in vals.iter().zip(&d.channels) {
                    if ch.kind == hwmon::Kind::Temp {
                        hot = max_opt(hot, *v);
                    }
                }
            }
            return hot;
        }
        for z in &mut self.zones {
            if z.in_hottest {
                hot = max_opt(hot, z.read_c(now));
            }
        }
        hot
    }

    /// Reads everything once into `s` (shaped by [`Scrape::for_probes`]).
    pub fn scrape_into(&mut self, s: &mut Scrape) {
        let now = Instant::now();
        s.mono = now;
        s.wall_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);

        s.hottest_c = None;
        for (slot, z) in s.zone_c.iter_mut().zip(self.zones.iter_mut()) {
            *slot = z.read_c(now);
            if z.in_hottest {
                s.hottest_c = max_opt(s.hottest_c, *slot);
            }
        }
        for (slot, c) in s.cooling.iter_mut().zip(self.cooling.iter_mut()) {
            slot.state = c.read_state(now);
        }
        if let Some(l) = &mut self.load {
            l.refresh();
        }
        s.load_known = self.load.is_some();
        for (slot, p) in s.cpu.iter_mut().zip(self.policies.iter_mut()) {
            slot.cur_mhz = p.read_cur_mhz(now);
            slot.max_mhz = p.read_cap_mhz(now);
            slot.busy = self.load.as_ref().and_then(|l| l.busiest(&p.cpu_list));
        }
        for (slot, c) in s.counters.iter_mut().zip(self.counters.iter_mut()) {
            slot.value = c.read(now);
        }
        let mut at = 0;
        for d in &mut self.hwmon {
            let n = d.channels.len();
            d.read_into(now, &mut s.hwmon[at..at + n]);
            at += n;
        }
        for (slot, d) in s.devfreq.iter_mut().zip(self.devfreq.iter_mut()) {
            slot.cur_mhz = d.read_cur_mhz(now);
            slot.max_mhz = d.read_max_mhz(now);
            slot.load_pct = d.read_load_pct(now);
        }
        s.rail_alarm = None;
        for (slot, r) in s.rail_w.iter_mut().zip(self.rails.iter_mut()) {
            *slot = r.read_w(now);
            if let Some(a) = r.read_alarm(now) {
                s.rail_alarm = Some(s.rail_alarm.unwrap_or(false) | a);
            }
        }
        s.board_power_w = self.board_power.as_ref().and_then(|bp| {
            let mut sum = 0.0;
            for &i in &bp.rails {
                sum += s.rail_w.get(i).copied().flatten()?;
            }
            Some(sum)
        });
        s.tpu_level = None;
        for (slot, t) in s.tpu_c.iter_mut().zip(self.edge_tpus.iter_mut()) {
            *slot = t.read_c(now);
            if let Some(c) = *slot {
                let lvl = coral::dfs_level(c, &t.trips_c);
                s.tpu_level = Some(s.tpu_level.unwrap_or(0).max(lvl));
            }
        }
        s.rpi_bits = self.rpi.read_bits(now);
        s.rpi_uv_alarm = self.rpi.read_uv_alarm(now);
    }
}

fn dedup_join(items: &[&str]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    let mut parts = Vec::new();
    for it in items {
        if !seen.contains(it) {
            let n = items.iter().filter(|x| *x == it).count();
            parts.push(if n > 1 {
                format!("{it} x{n}")
            } else {
                it.to_string()
            });
            seen.push(it);
        }
    }
    parts.join(", ")
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// A cooling device's state in one scrape.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CoolingSample {
    pub state: Option<i64>,
    /// Whether stepping this device up throttles compute (false for fans).
    pub throttles: bool,
}

/// A cpufreq policy in one scrape, MHz.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuSample {
    pub cur_mhz: Option<f64>,
    /// `scaling_max_freq` now.
    pub max_mhz: Option<f64>,
    /// intel_pstate base clock, used as the cap on x86 (fixed per policy).
    pub base_mhz: Option<f64>,
    /// Busy fraction of the policy's busiest CPU since the previous scrape.
    pub busy: Option<f64>,
}

/// A throttle counter in one scrape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CounterSample {
    pub kind: CounterKind,
    pub value: Option<i64>,
}

/// A devfreq device in one scrape, MHz.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DevfreqSample {
    pub gpu: bool,
    pub cur_mhz: Option<f64>,
    pub max_mhz: Option<f64>,
    pub load_pct: Option<f64>,
}

/// One scrape of every probe, stamped once. Plain data: the summary code is tested on
/// hand-made scrapes.
#[derive(Debug, Clone)]
pub struct Scrape {
    pub mono: Instant,
    /// Unix milliseconds.
    pub wall_ms: i64,
    /// Hottest zone that counts (°C).
    pub hottest_c: Option<f64>,
    /// Per zone, °C.
    pub zone_c: Vec<Option<f64>>,
    pub cooling: Vec<CoolingSample>,
    pub cpu: Vec<CpuSample>,
    /// True when CPU load is known (`/proc/stat` readable): frequency is then judged
    /// only on busy policies.
    pub load_known: bool,
    pub counters: Vec<CounterSample>,
    /// Per hwmon channel (devices in discovery order), converted units.
    pub hwmon: Vec<Option<f64>>,
    pub devfreq: Vec<DevfreqSample>,
    /// Per rail, W.
    pub rail_w: Vec<Option<f64>>,
    /// Any INA3221 over-current alarm raised (None: no alarm files).
    pub rail_alarm: Option<bool>,
    /// Board power per the rail table, W.
    pub board_power_w: Option<f64>,
    /// Per Edge TPU, °C.
    pub tpu_c: Vec<Option<f64>>,
    /// Highest inferred Edge TPU clock-divider level.
    pub tpu_level: Option<u8>,
    pub rpi_bits: Option<u32>,
    pub rpi_uv_alarm: Option<bool>,
}

impl Default for Scrape {
    fn default() -> Scrape {
        Scrape {
            mono: Instant::now(),
            wall_ms: 0,
            hottest_c: None,
            zone_c: Vec::new(),
            cooling: Vec::new(),
            cpu: Vec::new(),
            load_known: false,
            counters: Vec::new(),
            hwmon: Vec::new(),
            devfreq: Vec::new(),
            rail_w: Vec::new(),
            rail_alarm: None,
            board_power_w: None,
            tpu_c: Vec::new(),
            tpu_level: None,
            rpi_bits: None,
            rpi_uv_alarm: None,
        }
    }
}

impl Scrape {
    /// A scrape shaped for `p` (allocates once; scrapes then reuse it).
    pub fn for_probes(p: &Probes) -> Scrape {
        Scrape {
            zone_c: vec![None; p.zones.len()],
            cooling: p
                .cooling
                .iter()
                .map(|c| CoolingSample {
                    state: None,
                    throttles: c.throttles,
                })
                .collect(),
            cpu: p
                .policies
                .iter()
                .map(|pol| CpuSample {
                    base_mhz: pol.base_mhz,
                    ..CpuSample::default()
                })
                .collect(),
            counters: p
                .counters
                .iter()
                .map(|c| CounterSample {
                    kind: c.kind,
                    value: None,
                })
                .collect(),
            hwmon: vec![None; p.hwmon.iter().map(|d| d.channels.len()).sum()],
            devfreq: p
                .devfreq
                .iter()
                .map(|d| DevfreqSample {
                    gpu: d.gpu,
                    ..DevfreqSample::default()
                })
                .collect(),
            rail_w: vec![None; p.rails.len()],
            tpu_c: vec![None; p.edge_tpus.len()],
            ..Scrape::default()
        }
    }
}
