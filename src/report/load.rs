//! Reading result files for the report: streamed line by line, only the fields the
//! report uses kept, strings interned, so a million records fit in a few hundred MiB.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ReportError;
use crate::bench::result::SCHEMA;
use crate::models::arch_from_name;

/// Index of an interned string.
pub type Sym = u32;

/// Interned strings: every board, model, provider... name is stored once.
#[derive(Debug, Default, Clone)]
pub struct Names {
    map: HashMap<Box<str>, Sym>,
    names: Vec<Box<str>>,
}

impl Names {
    /// The symbol of `s`, adding it when new.
    pub fn intern(&mut self, s: &str) -> Sym {
        if let Some(&i) = self.map.get(s) {
            return i;
        }
        let i = self.names.len() as Sym;
        self.names.push(s.into());
        self.map.insert(s.into(), i);
        i
    }
    /// The string of a symbol.
    pub fn get(&self, i: Sym) -> &str {
        &self.names[i as usize]
    }
}

/// One result record, reduced to what the report uses. Absent numbers are NaN.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub board: Sym,
    pub backend: Sym,
    pub ep: Sym,
    pub precision: Sym,
    pub model: Sym,
    /// The record's `arch`, else derived from the model name
    /// ([`crate::models::arch_from_name`]).
    pub arch: Sym,
    pub batch_mode: Sym,
    pub device_id: Sym,
    pub runtime_version: Sym,
    pub threads: u32,
    pub batch: u32,
    /// `status` is `ok`.
    pub ok: bool,
    pub throttled: bool,
    pub ts: i64,
    pub p50: f64,
    pub p99: f64,
    /// 95 % interval of the median: the record's, else `p50 * (1 -/+ median_rel_ci)`.
    pub p50_lo: f64,
    pub p50_hi: f64,
    pub throughput: f64,
    pub throughput_lo: f64,
    pub throughput_hi: f64,
    pub temp_c_max: f64,
    pub power_w_mean: f64,
}

/// What was read.
#[derive(Debug, Default, Clone)]
pub struct Loaded {
    pub names: Names,
    pub points: Vec<Point>,
    /// Result records read before `--where` filtering.
    pub results_read: usize,
    /// Human notes about lines skipped (truncated last line, other record kinds).
    pub notes: Vec<String>,
}

/// The keys `--where` accepts.
pub const WHERE_KEYS: &[&str] = &[
    "board",
    "backend",
    "ep",
    "precision",
    "model",
    "arch",
    "batch",
    "batch_mode",
    "threads",
    "device_id",
    "runtime_version",
    "status",
    "sweep_id",
    "task",
];

/// A `--where KEY=VALUE` condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Cond {
    pub key: String,
    pub value: String,
}

impl std::str::FromStr for Cond {
    type Err = String;
    fn from_str(s: &str) -> Result<Cond, String> {
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))?;
        let key = match k.trim() {
            "provider" | "delegate" => "ep",
            "runtime" => "runtime_version",
            k => k,
        };
        if !WHERE_KEYS.contains(&key) {
            return Err(format!(
                "unknown key `{k}` (known: {})",
                WHERE_KEYS.join(", ")
            ));
        }
        Ok(Cond {
            key: key.to_string(),
            value: v.trim().to_string(),
        })
    }
}

/// The fields read from a line; everything else is skipped unparsed.
#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(borrow, default)]
    record: Option<Cow<'a, str>>,
    #[serde(default)]
    schema: Option<u32>,
    #[serde(borrow, default)]
    board: Cow<'a, str>,
    #[serde(borrow, default)]
    backend: Cow<'a, str>,
    #[serde(borrow, default)]
    ep: Cow<'a, str>,
    #[serde(borrow, default)]
    precision: Cow<'a, str>,
    #[serde(borrow, default)]
    model: Cow<'a, str>,
    #[serde(borrow, default)]
    arch: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    batch_mode: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    device_id: Cow<'a, str>,
    #[serde(borrow, default)]
    runtime_version: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    status: Cow<'a, str>,
    #[serde(borrow, default)]
    sweep_id: Cow<'a, str>,
    #[serde(borrow, default)]
    task: Option<Cow<'a, str>>,
    #[serde(default)]
    threads: u32,
    #[serde(default)]
    batch: u32,
    #[serde(default)]
    ts: i64,
    #[serde(default)]
    throttled: Option<bool>,
    latency_ms_p50: Option<f64>,
    latency_ms_p99: Option<f64>,
    latency_ms_p50_ci_low: Option<f64>,
    latency_ms_p50_ci_high: Option<f64>,
    median_rel_ci: Option<f64>,
    throughput_ips: Option<f64>,
    throughput_ips_ci_low: Option<f64>,
    throughput_ips_ci_high: Option<f64>,
    temp_c_max: Option<f64>,
    power_w_mean: Option<f64>,
}

impl Raw<'_> {
    fn arch(&self) -> Cow<'_, str> {
        match &self.arch {
            Some(a) if !a.is_empty() => Cow::Borrowed(a.as_ref()),
            _ => Cow::Owned(arch_from_name(&self.model)),
        }
    }

    fn matches(&self, c: &Cond) -> bool {
        let s = |o: &Option<Cow<str>>| o.as_deref().unwrap_or("").to_string();
        let v: Cow<str> = match c.key.as_str() {
            "board" => Cow::Borrowed(&self.board),
            "backend" => Cow::Borrowed(&self.backend),
            "ep" => Cow::Borrowed(&self.ep),
            "precision" => Cow::Borrowed(&self.precision),
            "model" => Cow::Borrowed(&self.model),
            "arch" => Cow::Owned(self.arch().into_owned()),
            "batch" => Cow::Owned(self.batch.to_string()),
            "batch_mode" => Cow::Owned(s(&self.batch_mode)),
            "threads" => Cow::Owned(self.threads.to_string()),
            "device_id" => Cow::Borrowed(&self.device_id),
            "runtime_version" => Cow::Owned(s(&self.runtime_version)),
            "status" => Cow::Borrowed(&self.status),
            "sweep_id" => Cow::Borrowed(&self.sweep_id),
            "task" => Cow::Owned(s(&self.task)),
            _ => return false,
        };
        v == c.value
    }
}

fn nan(x: Option<f64>) -> f64 {
    x.unwrap_or(f64::NAN)
}

/// Reads result files in order, keeping the results every condition matches.
///
/// Errors ([`ReportError::BadInput`]): an unreadable or empty file, a line that is not a
/// JSON record (except a truncated last line, which is skipped with a note), a record of
/// another schema version (all files' versions are listed).
pub fn load_files(files: &[PathBuf], conds: &[Cond]) -> Result<Loaded, ReportError> {
    let mut out = Loaded::default();
    let mut other_kinds: usize = 0;
    let mut first_other: Option<String> = None;
    let mut schemas: Vec<(String, u32, usize)> = Vec::new();
    for path in files {
        let f = std::fs::File::open(path)
            .map_err(|e| ReportError::Io(format!("cannot open {}: {e}", path.display())))?;
        let mut r = std::io::BufReader::with_capacity(1 << 20, f);
        let read = load_one(
            path,
            &mut r,
            conds,
            &mut out,
            &mut other_kinds,
            &mut first_other,
            &mut schemas,
        )?;
        if read == 0 {
            return Err(ReportError::BadInput(format!(
                "{}: empty file (no records)",
                path.display()
            )));
        }
    }
    let wrong: Vec<&(String, u32, usize)> = schemas.iter().filter(|s| s.1 != SCHEMA).collect();
    if let Some(first) = wrong.first() {
        let all: Vec<String> = schemas
            .iter()
            .map(|(f, s, line)| format!("{f} (from line {line}): schema {s}"))
            .collect();
        return Err(ReportError::BadInput(format!(
            "{}:{}: record schema {}, but this edgebench reads schema {SCHEMA}; files of different schema versions: {}",
            first.0,
            first.2,
            first.1,
            all.join("; ")
        )));
    }
    if other_kinds > 0 {
        out.notes.push(format!(
            "skipped {other_kinds} record(s) of another kind than result or summary (first: {})",
            first_other.unwrap_or_default()
        ));
    }
    Ok(out)
}

/// Reads one file; returns the number of records (of any kind) read.
#[allow(clippy::too_many_arguments)]
fn load_one(
    path: &Path,
    r: &mut dyn BufRead,
    conds: &[Cond],
    out: &mut Loaded,
    other_kinds: &mut usize,
    first_other: &mut Option<String>,
    schemas: &mut Vec<(String, u32, usize)>,
) -> Result<usize, ReportError> {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut lineno = 0usize;
    let mut records = 0usize;
    let name = path.display().to_string();
    loop {
        buf.clear();
        let n = r
            .read_until(b'\n', &mut buf)
            .map_err(|e| ReportError::Io(format!("reading {name}: {e}")))?;
        if n == 0 {
            break;
        }
        lineno += 1;
        let complete = buf.last() == Some(&b'\n');
        let line = buf.trim_ascii();
        if line.is_empty() {
            continue;
        }
        let raw: Raw = match serde_json::from_slice(line) {
            Ok(r) => r,
            Err(e) if !complete && e.is_eof() => {
                // A run cut off while writing its last record: keep everything before.
                out.notes.push(format!(
                    "{name}:{lineno}: truncated last line skipped (no newline at the end; the writer was probably stopped)"
                ));
                break;
            }
            Err(e) => {
                let shown: String = String::from_utf8_lossy(&line[..line.len().min(60)]).into();
                return Err(ReportError::BadInput(format!(
                    "{name}:{lineno}: not a result record ({e}): `{shown}`"
                )));
            }
        };
        records += 1;
        let schema = raw.schema.unwrap_or(0);
        match schemas.iter_mut().find(|s| s.0 == name && s.1 == schema) {
            Some(_) => {}
            None => schemas.push((name.clone(), schema, lineno)),
        }
        if raw.record.as_deref() == Some("summary") {
            // Sweep summaries: the report recomputes knees from the results.
            continue;
        }
        if raw.record.as_deref() != Some("result") {
            *other_kinds += 1;
            if first_other.is_none() {
                *first_other = Some(format!(
                    "{name}:{lineno}, record kind `{}`",
                    raw.record.as_deref().unwrap_or("(none)")
                ));
            }
            continue;
        }
        out.results_read += 1;
        if !conds.iter().all(|c| raw.matches(c)) {
            continue;
        }
        let names = &mut out.names;
        let p50 = nan(raw.latency_ms_p50);
        let (p50_lo, p50_hi) = match (
            raw.latency_ms_p50_ci_low,
            raw.latency_ms_p50_ci_high,
            raw.median_rel_ci,
        ) {
            (Some(lo), Some(hi), _) => (lo, hi),
            (_, _, Some(rel)) if p50.is_finite() => (p50 * (1.0 - rel), p50 * (1.0 + rel)),
            _ => (f64::NAN, f64::NAN),
        };
        let arch = raw.arch();
        out.points.push(Point {
            board: names.intern(&raw.board),
            backend: names.intern(&raw.backend),
            ep: names.intern(&raw.ep),
            precision: names.intern(&raw.precision),
            model: names.intern(&raw.model),
            arch: names.intern(&arch),
            batch_mode: names.intern(raw.batch_mode.as_deref().unwrap_or("")),
            device_id: names.intern(&raw.device_id),
            runtime_version: names.intern(raw.runtime_version.as_deref().unwrap_or("")),
            threads: raw.threads,
            batch: raw.batch,
            ok: raw.status == "ok",
            throttled: raw.throttled == Some(true),
            ts: raw.ts,
            p50,
            p99: nan(raw.latency_ms_p99),
            p50_lo,
            p50_hi,
            throughput: nan(raw.throughput_ips),
            throughput_lo: nan(raw.throughput_ips_ci_low),
            throughput_hi: nan(raw.throughput_ips_ci_high),
            temp_c_max: nan(raw.temp_c_max),
            power_w_mean: nan(raw.power_w_mean),
        });
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    const R: &str = r#"{"record":"result","schema":1,"board":"b","backend":"ort","ep":"cpu","precision":"fp32","model":"mobilenet_v2_int8","batch":1,"threads":1,"status":"ok","device_id":"d","latency_ms_p50":10.0,"median_rel_ci":0.1,"throughput_ips":100.0,"unknown_key":[1,{"x":2}]}"#;

    #[test]
    fn reads_results_derives_arch_and_interval() {
        let d = tempfile::tempdir().unwrap();
        let f = write(
            d.path(),
            "a.jsonl",
            &format!("{R}\n\n{{\"record\":\"summary\",\"schema\":1}}\n{{\"record\":\"telemetry\",\"schema\":1}}\n"),
        );
        let l = load_files(&[f], &[]).unwrap();
        assert_eq!(l.points.len(), 1);
        let p = &l.points[0];
        assert_eq!(l.names.get(p.arch), "mobilenet_v2");
        assert_eq!((p.p50_lo, p.p50_hi), (9.0, 11.0));
        assert_eq!(
            l.notes.len(),
            1,
            "summaries skipped silently: {:?}",
            l.notes
        );
        assert!(
            l.notes[0].contains("a.jsonl:4, record kind `telemetry`"),
            "{:?}",
            l.notes
        );
    }

    #[test]
    fn truncated_last_line_is_skipped_with_a_note() {
        let d = tempfile::tempdir().unwrap();
        let f = write(d.path(), "t.jsonl", &format!("{R}\n{}", &R[..40]));
        let l = load_files(&[f], &[]).unwrap();
        assert_eq!(l.points.len(), 1);
        assert!(
            l.notes[0].contains("t.jsonl:2: truncated last line"),
            "{:?}",
            l.notes
        );
    }

    #[test]
    fn bad_lines_empty_files_and_schemas_are_errors() {
        let d = tempfile::tempdir().unwrap();
        let bad = write(d.path(), "bad.jsonl", &format!("{R}\nINFO starting\n{R}\n"));
        let e = load_files(&[bad], &[]).unwrap_err().to_string();
        assert!(
            e.contains("bad.jsonl:2: not a result record") && e.contains("INFO starting"),
            "{e}"
        );
        let empty = write(d.path(), "empty.jsonl", "");
        let e = load_files(&[empty], &[]).unwrap_err().to_string();
        assert!(e.contains("empty.jsonl: empty file"), "{e}");
        let v1 = write(d.path(), "v1.jsonl", &format!("{R}\n"));
        let v2 = write(
            d.path(),
            "v2.jsonl",
            &format!("{}\n", R.replace("\"schema\":1", "\"schema\":2")),
        );
        let e = load_files(&[v1, v2], &[]).unwrap_err();
        assert!(matches!(e, ReportError::BadInput(_)));
        let e = e.to_string();
        assert!(
            e.contains("v2.jsonl:1: record schema 2")
                && e.contains("v1.jsonl (from line 1): schema 1"),
            "{e}"
        );
    }

    #[test]
    fn where_conditions_filter_and_reject_unknown_keys() {
        let d = tempfile::tempdir().unwrap();
        let other = R.replace("\"batch\":1", "\"batch\":2");
        let f = write(d.path(), "w.jsonl", &format!("{R}\n{other}\n"));
        let c: Cond = "batch=2".parse().unwrap();
        let l = load_files(&[f.clone()], &[c]).unwrap();
        assert_eq!((l.points.len(), l.results_read), (1, 2));
        assert_eq!(l.points[0].batch, 2);
        let c: Cond = "arch=mobilenet_v2".parse().unwrap();
        assert_eq!(load_files(&[f], &[c]).unwrap().points.len(), 2);
        assert!("colour=red"
            .parse::<Cond>()
            .unwrap_err()
            .contains("unknown key `colour`"));
        assert_eq!("delegate=edgetpu".parse::<Cond>().unwrap().key, "ep");
    }
}
