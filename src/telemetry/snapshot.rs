//! The flat telemetry map the daemon publishes on `<prefix>/telemetry` (DESIGN.md
//! section 6): one scrape, units in key names, absent readings left out.
//!
//! Keys: `ts` (Unix ms), `board`, `temp_c` (hottest), `temp_c_<zone>`,
//! `freq_mhz_cpu<N>`, `freq_mhz_gpu`, `freq_mhz_<devfreq>`, `gpu_load_pct`,
//! `power_w_<rail>`, `power_w` (board power per the rail table), `fan_rpm_<hwmon>`,
//! `fan_pwm_<hwmon>`, `temp_c_edgetpu<N>`, `edgetpu_dfs_level`, `rpi_throttled_bits`,
//! `mem_available_mb` (MiB), `throttled`, `throttle_reasons`.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use super::hwmon::Kind;
use super::probes::{Probes, Scrape};
use super::summary::Accum;
use super::sysroot::{slug, SysRoot};
use super::{throttle, Board};

/// Now as Unix milliseconds.
pub fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Throttle state between two snapshots. The frequency-below-cap rule is left out: an
/// idle board runs below its cap by design.
pub fn throttled_between(
    prev: Option<&Scrape>,
    cur: &Scrape,
    freq_drop_fraction: f64,
) -> (Option<bool>, Vec<String>) {
    let mut acc = Accum::new(cur, freq_drop_fraction);
    if let Some(p) = prev {
        acc.push(p);
    }
    acc.push(cur);
    let reasons: Vec<String> = acc
        .reasons()
        .into_iter()
        .filter(|r| r != throttle::CPU_FREQ_BELOW_CAP)
        .collect();
    (acc.has_signals().then_some(!reasons.is_empty()), reasons)
}

/// `MemAvailable` from `/proc/meminfo`, MiB (kernel: kB).
pub fn mem_available_mb(root: &SysRoot) -> Option<i64> {
    let text = root.read_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024)
}

fn put(m: &mut Map<String, Value>, key: String, v: Option<f64>) {
    if let Some(n) = v.and_then(serde_json::Number::from_f64) {
        m.insert(key, Value::Number(n));
    }
}

/// Builds the flat map from one scrape.
pub fn flat(
    root: &SysRoot,
    board: &Board,
    p: &Probes,
    s: &Scrape,
    throttled: Option<bool>,
    reasons: &[String],
) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("ts".into(), Value::from(s.wall_ms));
    m.insert("board".into(), Value::from(board.id.clone()));
    put(&mut m, "temp_c".into(), s.hottest_c);
    for (z, v) in p.zones.iter().zip(&s.zone_c) {
        put(&mut m, format!("temp_c_{}", z.key), *v);
    }
    let mut at = 0;
    for d in &p.hwmon {
        let vals = &s.hwmon[at..at + d.channels.len()];
        at += d.channels.len();
        let name = slug(&d.name);
        for (ch, v) in d.channels.iter().zip(vals) {
            let key = match ch.kind {
                Kind::Fan => format!("fan_rpm_{name}"),
                Kind::Pwm => format!("fan_pwm_{name}"),
                // Boards without thermal zones: their hwmon temperatures instead.
                Kind::Temp if p.zones.is_empty() => {
                    let what = ch.label.as_deref().map(slug).unwrap_or_else(|| ch.attr());
                    format!("temp_c_{name}_{what}")
                }
                _ => continue,
            };
            let key = if ch.number > 1 {
                format!("{key}{}", ch.number)
            } else {
                key
            };
            put(&mut m, key, *v);
        }
    }
    for (pol, c) in p.policies.iter().zip(&s.cpu) {
        put(&mut m, format!("freq_mhz_cpu{}", pol.first_cpu), c.cur_mhz);
    }
    for (d, v) in p.devfreq.iter().zip(&s.devfreq) {
        put(&mut m, format!("freq_mhz_{}", d.key()), v.cur_mhz);
        if d.gpu {
            put(&mut m, "gpu_load_pct".into(), v.load_pct);
        }
    }
    for (r, w) in p.rails.iter().zip(&s.rail_w) {
        put(&mut m, format!("power_w_{}", slug(&r.name)), *w);
    }
    put(&mut m, "power_w".into(), s.board_power_w);
    for (i, (t, c)) in p.edge_tpus.iter().zip(&s.tpu_c).enumerate() {
        let n = t
            .name
            .strip_prefix("apex_")
            .map(str::to_string)
            .unwrap_or(i.to_string());
        put(&mut m, format!("temp_c_edgetpu{n}"), *c);
    }
    if let Some(l) = s.tpu_level {
        m.insert("edgetpu_dfs_level".into(), Value::from(l));
    }
    if let Some(b) = s.rpi_bits {
        m.insert("rpi_throttled_bits".into(), Value::from(b));
    }
    if let Some(mb) = mem_available_mb(root) {
        m.insert("mem_available_mb".into(), Value::from(mb));
    }
    if let Some(t) = throttled {
        m.insert("throttled".into(), Value::from(t));
        if !reasons.is_empty() {
            m.insert("throttle_reasons".into(), Value::from(reasons.join(",")));
        }
    }
    m
}
