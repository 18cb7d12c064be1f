//! `edgebench probe`: the board, every probe found and its readings, as a table or
//! JSON; `--sysroot DIR` reads a captured tree; `--capture DIR` writes one.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::{json, Map, Value};

use super::probes::{Probes, Scrape};
use super::sensor::Sensor;
use super::{capture, SysRoot, Telemetry};
use crate::config::{DeviceConfig, TelemetryConfig};

/// Arguments of `edgebench probe`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ProbeArgs {
    /// Read under this directory instead of / (a capture, or the host's root mounted
    /// in a container)
    #[arg(long, value_name = "DIR")]
    pub sysroot: Option<PathBuf>,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
    /// Copy the files the probes read into DIR (new or empty), for `--sysroot DIR`
    #[arg(long, value_name = "DIR")]
    pub capture: Option<PathBuf>,
    /// Board id to use instead of detecting it
    #[arg(long, value_name = "ID")]
    pub board: Option<String>,
    /// Rail table (board id) or rails joined by `+` for board power
    #[arg(long, value_name = "TABLE")]
    pub rail_table: Option<String>,
}

/// Runs `probe` with built-in telemetry defaults, printing to stdout.
pub fn probe(args: &ProbeArgs) -> Result<()> {
    probe_with(args, &TelemetryConfig::default(), &DeviceConfig::default())
}

/// Runs `probe` with the loaded `[telemetry]` and `[device]` settings (flags win).
pub fn probe_with(args: &ProbeArgs, cfg: &TelemetryConfig, device: &DeviceConfig) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    probe_to(args, cfg, device, &mut out)
}

/// Runs `probe`, writing to `out`.
pub fn probe_to(
    args: &ProbeArgs,
    cfg: &TelemetryConfig,
    device: &DeviceConfig,
    out: &mut dyn Write,
) -> Result<()> {
    let mut cfg = cfg.clone();
    cfg.enabled = true;
    if let Some(s) = &args.sysroot {
        cfg.sysroot = s.to_string_lossy().into_owned();
    }
    let root_dir = PathBuf::from(&cfg.sysroot);
    if !root_dir.is_dir() {
        anyhow::bail!("sysroot {} is not a directory", root_dir.display());
    }
    let root = if args.capture.is_some() {
        SysRoot::recording(&root_dir)
    } else {
        SysRoot::new(&root_dir)
    };
    let board = args.board.clone().unwrap_or_else(|| device.board.clone());
    let rails = args
        .rail_table
        .clone()
        .unwrap_or_else(|| device.rail_table.clone());
    let tel = Telemetry::open_root(root, &cfg, &board, &rails);
    let report = tel.with_probes(|p| {
        let mut s = Scrape::for_probes(p);
        p.scrape_into(&mut s);
        build_report(&tel, p, &s)
    });
    let governor = tel.governor();
    let snap = tel.snapshot();
    let mut report = report;
    if let Some(g) = governor {
        report.insert("governor".into(), Value::from(g));
    }
    report.insert("snapshot".into(), Value::Object(snap));

    if let Some(dest) = &args.capture {
        let paths = tel.root().recorded();
        let stats = capture::capture(tel.root(), &paths, dest)
            .with_context(|| format!("capturing into {}", dest.display()))?;
        writeln!(
            out,
            "captured {} files and {} links into {} (read it back with --sysroot {})",
            stats.files,
            stats.links,
            dest.display(),
            dest.display()
        )?;
        for s in &stats.skipped {
            writeln!(out, "  not copied (unreadable now): {s}")?;
        }
        return Ok(());
    }
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &Value::Object(report))?;
        writeln!(out)?;
    } else {
        write_table(&report, out)?;
    }
    Ok(())
}

fn num(v: Option<f64>) -> Value {
    v.and_then(serde_json::Number::from_f64)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// `ok`, or why a value is absent.
fn status(value: Option<f64>, sensor: &Sensor, absent_ok: &str) -> &'static str {
    match (value, sensor.failure()) {
        (Some(_), _) => "ok",
        (None, Some(f)) => f.as_str(),
        (None, None) => match absent_ok {
            "offline" => "offline",
            _ => "absent",
        },
    }
}

/// Everything `probe` shows, as JSON (the table is rendered from it).
fn build_report(tel: &Telemetry, p: &Probes, s: &Scrape) -> Map<String, Value> {
    let mut r = Map::new();
    r.insert(
        "sysroot".into(),
        Value::from(tel.sysroot().display().to_string()),
    );
    r.insert(
        "board".into(),
        serde_json::to_value(tel.board_info()).unwrap_or(Value::Null),
    );
    r.insert("probes_found".into(), Value::from(p.found()));
    r.insert(
        "thermal_zones".into(),
        p.zones
            .iter()
            .zip(&s.zone_c)
            .map(|(z, v)| {
                json!({"zone": format!("thermal_zone{}", z.index), "type": z.kind, "key": z.key,
                       "temp_c": num(*v), "status": status(*v, z.sensor(), "offline"),
                       "in_hottest": z.in_hottest})
            })
            .collect(),
    );
    r.insert(
        "cooling_devices".into(),
        p.cooling
            .iter()
            .zip(&s.cooling)
            .map(|(c, v)| {
                json!({"device": format!("cooling_device{}", c.index), "type": c.kind,
                       "cur_state": v.state, "max_state": c.max_state, "throttles": c.throttles,
                       "status": status(v.state.map(|x| x as f64), c.sensor(), "")})
            })
            .collect(),
    );
    r.insert(
        "cpufreq".into(),
        p.policies
            .iter()
            .zip(&s.cpu)
            .map(|(pol, v)| {
                json!({"policy": pol.name, "cpus": pol.cpus, "driver": pol.driver,
                       "cur_mhz": num(v.cur_mhz), "source": pol.cur_source,
                       "scaling_max_mhz": num(v.max_mhz), "hw_max_mhz": num(pol.hw_max_mhz),
                       "hw_min_mhz": num(pol.hw_min_mhz), "base_mhz": num(pol.base_mhz),
                       "status": status(v.cur_mhz, pol.cur_sensor(), "")})
            })
            .collect(),
    );
    r.insert(
        "throttle_counters".into(),
        p.counters
            .iter()
            .zip(&s.counters)
            .map(|(c, v)| {
                json!({"scope": c.scope, "cpu": c.cpu,
                       "counter": match c.kind { super::cpufreq::CounterKind::Count => "count", _ => "total_time_ms" },
                       "value": v.value})
            })
            .collect(),
    );
    let mut at = 0;
    let mut hw = Vec::new();
    for d in &p.hwmon {
        let vals = &s.hwmon[at..at + d.channels.len()];
        at += d.channels.len();
        // A sleeping device's channels are neither read nor listed (nor captured).
        let shown = if d.asleep { 0 } else { d.channels.len() };
        let chans: Vec<Value> = d
            .channels
            .iter()
            .take(shown)
            .zip(vals)
            .map(|(c, v)| {
                json!({"attr": c.attr(), "label": c.label, "value": num(*v), "unit": c.kind.unit(),
                       "status": if d.asleep { "asleep" } else { status(*v, c.sensor(), "offline") }})
            })
            .collect();
        hw.push(
            json!({"hwmon": d.dir_name, "name": d.name, "asleep": d.asleep, "channels": chans}),
        );
    }
    r.insert("hwmon".into(), Value::from(hw));
    r.insert(
        "devfreq".into(),
        p.devfreq
            .iter()
            .zip(&s.devfreq)
            .map(|(d, v)| {
                json!({"device": d.name, "gpu": d.gpu, "node": d.node, "governor": d.governor,
                       "cur_mhz": num(v.cur_mhz), "max_mhz": num(v.max_mhz), "min_mhz": num(d.min_mhz),
                       "load_pct": num(v.load_pct), "status": status(v.cur_mhz, d.cur_sensor(), "")})
            })
            .collect(),
    );
    r.insert(
        "rails".into(),
        p.rails
            .iter()
            .zip(&s.rail_w)
            .map(|(rl, w)| {
                json!({"rail": rl.name, "driver": rl.driver, "address": rl.address, "power_w": num(*w),
                       "in_board_power": p.board_power.as_ref().is_some_and(|b| b.scope.split('+').any(|n| n == rl.name))})
            })
            .collect(),
    );
    if let Some(bp) = &p.board_power {
        r.insert(
            "board_power".into(),
            json!({"scope": bp.scope, "source": bp.source, "power_w": num(s.board_power_w),
                   "note": "on-board estimate (INA3221 rails), not wall power"}),
        );
    }
    r.insert(
        "edge_tpus".into(),
        p.edge_tpus
            .iter()
            .zip(&s.tpu_c)
            .map(|(t, v)| {
                json!({"device": t.name, "temp_c": num(*v),
                       "trip_points_c": t.trips_c.iter().map(|x| num(*x)).collect::<Vec<_>>(),
                       "shutdown_c": num(t.shutdown_c),
                       "dfs_level": v.map(|c| super::coral::dfs_level(c, &t.trips_c)),
                       "status": if t.asleep { "asleep" } else { status(*v, t.sensor(), "") }})
            })
            .collect(),
    );
    if p.rpi.present() {
        r.insert(
            "rpi".into(),
            json!({"get_throttled": s.rpi_bits.map(|b| format!("0x{b:x}")),
                   "now": s.rpi_bits.map(|b| super::rpi::now_reasons(b).collect::<Vec<_>>()),
                   "under_voltage_alarm": s.rpi_uv_alarm}),
        );
    }
    if let Some(t) = s.hottest_c {
        r.insert("hottest_temp_c".into(), num(Some(t)));
    }
    r
}

/// Fixed-width table printer.
fn table(out: &mut dyn Write, title: &str, head: &[&str], rows: &[Vec<String>]) -> Result<()> {
    writeln!(out, "\n{title}")?;
    let mut w: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < w.len() {
                w[i] = w[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::from(" ");
        for (i, c) in cells.iter().enumerate() {
            s.push(' ');
            s.push_str(c);
            if i + 1 < cells.len() {
                s.push_str(&" ".repeat(w[i].saturating_sub(c.chars().count())));
            }
        }
        s
    };
    writeln!(
        out,
        "{}",
        line(head.iter().map(|h| h.to_string()).collect())
    )?;
    for r in rows {
        writeln!(out, "{}", line(r.clone()))?;
    }
    Ok(())
}

/// A JSON value as a table cell: numbers trimmed, null as `-`.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => {
                let s = format!("{f:.3}");
                s.trim_end_matches('0').trim_end_matches('.').to_string()
            }
            _ => n.to_string(),
        },
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        other => other.to_string(),
    }
}

fn rows(v: Option<&Value>, keys: &[&str]) -> Vec<Vec<String>> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|o| {
                    keys.iter()
                        .map(|k| cell(o.get(*k).unwrap_or(&Value::Null)))
                        .collect()
                })
                .collect()
        })
        .unwrap_or_default()
}

fn write_table(r: &Map<String, Value>, out: &mut dyn Write) -> Result<()> {
    let b = r.get("board").cloned().unwrap_or(Value::Null);
    write!(out, "board: {}", cell(b.get("id").unwrap_or(&Value::Null)))?;
    if let Some(m) = b.get("model").and_then(Value::as_str) {
        write!(out, " ({m})")?;
    }
    if let Some(l) = b.get("l4t").and_then(Value::as_str) {
        write!(out, ", L4T {l}")?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "sysroot: {}",
        cell(r.get("sysroot").unwrap_or(&Value::Null))
    )?;
    if let Some(g) = r.get("governor") {
        writeln!(out, "governor: {}", cell(g))?;
    }
    let zones = rows(
        r.get("thermal_zones"),
        &["zone", "type", "temp_c", "status"],
    );
    if zones.is_empty() {
        writeln!(
            out,
            "\nno thermal zones found under {}/sys/class/thermal",
            cell(r.get("sysroot").unwrap_or(&Value::Null)).trim_end_matches('/')
        )?;
    } else {
        table(
            out,
            "thermal zones",
            &["zone", "type", "temp_c", "status"],
            &zones,
        )?;
    }
    let sections: [(&str, &str, &[&str]); 6] = [
        (
            "cooling_devices",
            "cooling devices",
            &["device", "type", "cur_state", "max_state", "throttles"],
        ),
        (
            "cpufreq",
            "cpufreq",
            &[
                "policy",
                "cpus",
                "driver",
                "cur_mhz",
                "source",
                "scaling_max_mhz",
                "hw_max_mhz",
                "base_mhz",
            ],
        ),
        (
            "throttle_counters",
            "x86 thermal_throttle counters",
            &["scope", "cpu", "counter", "value"],
        ),
        (
            "devfreq",
            "devfreq",
            &[
                "device", "gpu", "governor", "cur_mhz", "max_mhz", "load_pct",
            ],
        ),
        (
            "rails",
            "power rails",
            &["rail", "driver", "address", "power_w", "in_board_power"],
        ),
        (
            "edge_tpus",
            "Edge TPU",
            &["device", "temp_c", "dfs_level", "shutdown_c", "status"],
        ),
    ];
    for (key, title, cols) in sections {
        let rs = rows(r.get(key), cols);
        if !rs.is_empty() {
            table(out, title, cols, &rs)?;
        }
    }
    if let Some(hw) = r.get("hwmon").and_then(Value::as_array) {
        let mut rs = Vec::new();
        for d in hw {
            let dev = format!("{} ({})", cell(&d["hwmon"]), cell(&d["name"]));
            for c in d["channels"].as_array().into_iter().flatten() {
                rs.push(vec![
                    dev.clone(),
                    cell(&c["attr"]),
                    cell(&c["label"]),
                    cell(&c["value"]),
                    cell(&c["unit"]),
                    cell(&c["status"]),
                ]);
            }
            if d["channels"].as_array().is_none_or(|a| a.is_empty()) {
                rs.push(vec![
                    dev,
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "no channels".into(),
                ]);
            }
        }
        if !rs.is_empty() {
            table(
                out,
                "hwmon",
                &["device", "attr", "label", "value", "unit", "status"],
                &rs,
            )?;
        }
    }
    if let Some(bp) = r.get("board_power") {
        writeln!(
            out,
            "\nboard power: {} W ({}; {}; on-board estimate, not wall power)",
            cell(&bp["power_w"]),
            cell(&bp["scope"]),
            cell(&bp["source"])
        )?;
    }
    if let Some(rpi) = r.get("rpi") {
        writeln!(
            out,
            "\nraspberry pi: get_throttled {}, under-voltage alarm {}",
            cell(&rpi["get_throttled"]),
            cell(&rpi["under_voltage_alarm"])
        )?;
    }
    if let Some(snap) = r.get("snapshot") {
        if let Some(t) = snap.get("mem_available_mb") {
            writeln!(out, "\nmemory available: {} MiB", cell(t))?;
        }
    }
    Ok(())
}
