//! Reading result files for the report: streamed line by line, only the fields the
//! report uses kept, strings interned, so a million records fit in a few hundred MiB.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::PathBuf;

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
    /// Each symbol's rank in alphabetical order, indexed by symbol.
    pub fn ranks(&self) -> Vec<u32> {
        let mut idx: Vec<u32> = (0..self.names.len() as u32).collect();
        idx.sort_unstable_by(|&a, &b| self.names[a as usize].cmp(&self.names[b as usize]));
        let mut rank = vec![0; idx.len()];
        for (r, &i) in idx.iter().enumerate() {
            rank[i as usize] = r as u32;
        }
        rank
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
#[derive(Deserialize, Default)]
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

/// The fields of a line by the flat-object scanner; None sends the line to serde_json
/// (unusual layout, escapes, a value of an unexpected type, or a bad line).
fn fast_raw(line: &[u8]) -> Option<Raw<'_>> {
    use super::scan::{flat_object, Val};
    fn s(v: Val<'_>) -> Option<Cow<'_, str>> {
        match v {
            Val::Str {
                raw,
                escaped: false,
            } => std::str::from_utf8(raw).ok().map(Cow::Borrowed),
            _ => None,
        }
    }
    fn n<T: std::str::FromStr>(v: Val) -> Option<T> {
        match v {
            Val::Num(t) => t.parse().ok(),
            _ => None,
        }
    }
    fn f(v: Val) -> Option<Option<f64>> {
        match v {
            Val::Null => Some(None),
            v => n(v).map(Some),
        }
    }
    let mut r = Raw::default();
    flat_object(line, |k, v| {
        match k {
            b"record" => r.record = Some(s(v)?),
            b"schema" => r.schema = Some(n(v)?),
            b"board" => r.board = s(v)?,
            b"backend" => r.backend = s(v)?,
            b"ep" => r.ep = s(v)?,
            b"precision" => r.precision = s(v)?,
            b"model" => r.model = s(v)?,
            b"arch" => r.arch = Some(s(v)?),
            b"batch_mode" => r.batch_mode = Some(s(v)?),
            b"device_id" => r.device_id = s(v)?,
            b"runtime_version" => r.runtime_version = Some(s(v)?),
            b"status" => r.status = s(v)?,
            b"sweep_id" => r.sweep_id = s(v)?,
            b"task" => r.task = Some(s(v)?),
            b"threads" => r.threads = n(v)?,
            b"batch" => r.batch = n(v)?,
            b"ts" => r.ts = n(v)?,
            b"throttled" => match v {
                Val::Bool(b) => r.throttled = Some(b),
                _ => return None,
            },
            b"latency_ms_p50" => r.latency_ms_p50 = f(v)?,
            b"latency_ms_p99" => r.latency_ms_p99 = f(v)?,
            b"latency_ms_p50_ci_low" => r.latency_ms_p50_ci_low = f(v)?,
            b"latency_ms_p50_ci_high" => r.latency_ms_p50_ci_high = f(v)?,
            b"median_rel_ci" => r.median_rel_ci = f(v)?,
            b"throughput_ips" => r.throughput_ips = f(v)?,
            b"throughput_ips_ci_low" => r.throughput_ips_ci_low = f(v)?,
            b"throughput_ips_ci_high" => r.throughput_ips_ci_high = f(v)?,
            b"temp_c_max" => r.temp_c_max = f(v)?,
            b"power_w_mean" => r.power_w_mean = f(v)?,
            _ => {}
        }
        Some(())
    })?;
    Some(r)
}

fn nan(x: Option<f64>) -> f64 {
    x.unwrap_or(f64::NAN)
}

/// Bytes per parsing chunk (cut at a line end).
const CHUNK: usize = 8 << 20;

/// What one chunk of a file yields. Line numbers are relative to the chunk.
#[derive(Default)]
struct ChunkOut {
    names: Names,
    points: Vec<Point>,
    lines: usize,
    records: usize,
    results: usize,
    /// The first bad line and the message.
    error: Option<(usize, String)>,
    /// A truncated last line (only at the end of a file).
    truncated: Option<usize>,
    other_kinds: usize,
    first_other: Option<(usize, String)>,
    /// (schema, first line) per schema version seen.
    schemas: Vec<(u32, usize)>,
}

/// Reads result files in order, keeping the results every condition matches. Each
/// file is read in chunks parsed on all CPUs, merged back in order.
///
/// Errors ([`ReportError::BadInput`]): an unreadable or empty file, a line that is not a
/// JSON record (except a truncated last line, which is skipped with a note), a record of
/// another schema version (all files' versions are listed).
pub fn load_files(files: &[PathBuf], conds: &[Cond]) -> Result<Loaded, ReportError> {
    load(files, None, conds)
}

/// Reads files, then the result records of a fleet store (`(store, name)`: see
/// [`load_store`]), into one set.
pub fn load(
    files: &[PathBuf],
    store: Option<(&mut (dyn crate::fleet::store::Store + 'static), &str)>,
    conds: &[Cond],
) -> Result<Loaded, ReportError> {
    let mut acc = Acc::default();
    load_chunked(files, conds, CHUNK, &mut acc)?;
    if let Some((store, name)) = store {
        load_store(store, conds, name, &mut acc)?;
    }
    acc.finish()
}

/// Chunks merged in order, with what the messages need.
#[derive(Default)]
struct Acc {
    out: Loaded,
    other_kinds: usize,
    first_other: Option<String>,
    /// (source, schema, first line) per schema version seen in each source.
    schemas: Vec<(String, u32, usize)>,
}

impl Acc {
    /// Adds one parsed chunk of source `name` whose first line is `line_base + 1`.
    fn merge(&mut self, name: &str, line_base: usize, c: ChunkOut) -> Result<(), ReportError> {
        let out = &mut self.out;
        out.results_read += c.results;
        for (schema, line) in &c.schemas {
            if !self.schemas.iter().any(|s| s.0 == name && s.1 == *schema) {
                self.schemas
                    .push((name.to_string(), *schema, line_base + line));
            }
        }
        if let Some((line, msg)) = c.error {
            return Err(ReportError::BadInput(format!(
                "{name}:{}: {msg}",
                line_base + line
            )));
        }
        if let Some(line) = c.truncated {
            out.notes.push(format!(
                "{name}:{}: truncated last line skipped (no newline at the end; the writer was probably stopped)",
                line_base + line
            ));
        }
        self.other_kinds += c.other_kinds;
        if self.first_other.is_none() {
            self.first_other = c
                .first_other
                .map(|(line, kind)| format!("{name}:{}, record kind `{kind}`", line_base + line));
        }
        // Local symbols to the report's.
        let map: Vec<Sym> = c.names.names.iter().map(|n| out.names.intern(n)).collect();
        let m = |s: Sym| map[s as usize];
        out.points.extend(c.points.into_iter().map(|p| Point {
            board: m(p.board),
            backend: m(p.backend),
            ep: m(p.ep),
            precision: m(p.precision),
            model: m(p.model),
            arch: m(p.arch),
            batch_mode: m(p.batch_mode),
            device_id: m(p.device_id),
            runtime_version: m(p.runtime_version),
            ..p
        }));
        Ok(())
    }

    /// Checks schema versions across sources and adds the notes.
    fn finish(mut self) -> Result<Loaded, ReportError> {
        let wrong: Vec<&(String, u32, usize)> =
            self.schemas.iter().filter(|s| s.1 != SCHEMA).collect();
        if let Some(first) = wrong.first() {
            let all: Vec<String> = self
                .schemas
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
        if self.other_kinds > 0 {
            self.out.notes.push(format!(
                "skipped {} record(s) of another kind than result or summary (first: {})",
                self.other_kinds,
                self.first_other.unwrap_or_default()
            ));
        }
        Ok(self.out)
    }
}

/// A piece of one file: the lines that start in bytes `start..end` (a line starts at
/// 0 and after each newline), so every line belongs to exactly one piece.
struct Piece {
    file: usize,
    start: u64,
    end: u64,
}

/// Reads the lines of `p` from `f` (of `len` bytes) into `buf`: returns their range in
/// `buf` and whether the file ended inside it (its last line may lack a newline).
fn read_piece(
    f: &std::fs::File,
    len: u64,
    p: &Piece,
    buf: &mut Vec<u8>,
) -> std::io::Result<(std::ops::Range<usize>, bool)> {
    use std::os::unix::fs::FileExt;
    // One byte before the piece tells whether a line starts at its first byte.
    let from = p.start.saturating_sub(1);
    // Resized, not cleared: a reused buffer is not zeroed again.
    buf.resize((p.end - from) as usize, 0);
    f.read_exact_at(buf, from)?;
    let first = if p.start == 0 {
        0
    } else {
        // A newline before the piece's last byte starts a line inside it.
        match memchr::memchr(b'\n', &buf[..buf.len() - 1]) {
            Some(i) => i + 1,
            None => return Ok((0..0, false)),
        }
    };
    // The last line may run past the piece: read on to its newline or the file's end.
    let mut at = p.end;
    let mut step = 64 << 10;
    while buf.last() != Some(&b'\n') {
        if at >= len {
            return Ok((first..buf.len(), true));
        }
        let old = buf.len();
        let n = step.min((len - at) as usize);
        buf.resize(old + n, 0);
        f.read_exact_at(&mut buf[old..], at)?;
        at += n as u64;
        step *= 2;
        if let Some(i) = memchr::memchr(b'\n', &buf[old..]) {
            buf.truncate(old + i + 1);
        }
    }
    Ok((first..buf.len(), at >= len))
}

/// Reads `files` in pieces of `chunk` bytes, parsed on all CPUs (each worker reads its
/// own pieces), merged back in order as they arrive.
fn load_chunked(
    files: &[PathBuf],
    conds: &[Cond],
    chunk: usize,
    acc: &mut Acc,
) -> Result<(), ReportError> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let chunk = chunk.max(2) as u64;
    let mut opened = Vec::with_capacity(files.len());
    let mut pieces = Vec::new();
    for (i, path) in files.iter().enumerate() {
        let name = path.display().to_string();
        let f = std::fs::File::open(path)
            .map_err(|e| ReportError::Io(format!("cannot open {name}: {e}")))?;
        let len = f
            .metadata()
            .map_err(|e| ReportError::Io(format!("reading {name}: {e}")))?
            .len();
        if len == 0 {
            return Err(ReportError::BadInput(format!(
                "{name}: empty file (no records)"
            )));
        }
        let mut start = 0;
        while start < len {
            let end = (start + chunk).min(len);
            pieces.push(Piece {
                file: i,
                start,
                end,
            });
            start = end;
        }
        opened.push((f, name, len));
    }
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8)
        .min(pieces.len())
        .max(1);
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::channel();
        for _ in 0..workers {
            let tx = tx.clone();
            let (next, pieces, opened) = (&next, &pieces, &opened);
            s.spawn(move || {
                let mut buf = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(p) = pieces.get(i) else { break };
                    let (f, name, len) = &opened[p.file];
                    let out = read_piece(f, *len, p, &mut buf)
                        .map(|(r, at_end)| parse_chunk(&buf[r], conds, at_end))
                        .map_err(|e| ReportError::Io(format!("reading {name}: {e}")));
                    if tx.send((i, out)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        // Merge in file order; on an error, the workers stop at their next piece.
        let merged = (|| {
            let mut pending = std::collections::BTreeMap::new();
            let (mut want, mut line_base, mut records) = (0, 0, 0);
            for (i, out) in &rx {
                pending.insert(i, out);
                while let Some(out) = pending.remove(&want) {
                    let p = &pieces[want];
                    let name = &opened[p.file].1;
                    if p.start == 0 {
                        (line_base, records) = (0, 0);
                    }
                    let c = out?;
                    records += c.records;
                    let lines = c.lines;
                    acc.merge(name, line_base, c)?;
                    line_base += lines;
                    if p.end == opened[p.file].2 && records == 0 {
                        return Err(ReportError::BadInput(format!(
                            "{name}: empty file (no records)"
                        )));
                    }
                    want += 1;
                }
            }
            Ok(())
        })();
        if merged.is_err() {
            next.store(pieces.len(), Ordering::Relaxed);
        }
        drop(rx);
        merged
    })
}

/// Reads the result records of a fleet store (`edgebench collect` / `import`) as the
/// database streams them, kept as for files, 10,000 at a time (memory stays flat);
/// `name` (the URL, password hidden) stands for the file in messages, the row number
/// for the line.
fn load_store(
    store: &mut dyn crate::fleet::store::Store,
    conds: &[Cond],
    name: &str,
    acc: &mut Acc,
) -> Result<(), ReportError> {
    const ROWS: usize = 10_000;
    let mut buf = Vec::with_capacity(CHUNK);
    let (mut rows, mut line_base) = (0, 0);
    let mut stopped: Option<ReportError> = None;
    let flush = |buf: &mut Vec<u8>, acc: &mut Acc, line_base: &mut usize| {
        let c = parse_chunk(buf, conds, false);
        buf.clear();
        let lines = c.lines;
        acc.merge(name, *line_base, c)?;
        *line_base += lines;
        Ok::<(), ReportError>(())
    };
    let read = store.each_result(&crate::fleet::store::Filter::default(), &mut |v| {
        // Values from serde_json serialise.
        serde_json::to_writer(&mut buf, &v).expect("JSON value serialises");
        buf.push(b'\n');
        rows += 1;
        if rows % ROWS == 0 {
            if let Err(e) = flush(&mut buf, acc, &mut line_base) {
                stopped = Some(e);
                anyhow::bail!("stopped");
            }
        }
        Ok(())
    });
    if let Some(e) = stopped {
        return Err(e);
    }
    read.map_err(|e| ReportError::Io(format!("{name}: reading results: {e:#}")))?;
    flush(&mut buf, acc, &mut line_base)
}

/// Parses the lines of one chunk (whole lines; the last may lack its newline only
/// when `at_end`), stopping at the first bad line.
fn parse_chunk(buf: &[u8], conds: &[Cond], at_end: bool) -> ChunkOut {
    let mut out = ChunkOut::default();
    let mut rest = buf;
    // The last symbol of each field: consecutive records mostly repeat them, and a
    // comparison is cheaper than a hash lookup.
    let mut memo = [Sym::MAX; 9];
    let mut sym = |slot: usize, s: &str, names: &mut Names| -> Sym {
        let m = memo[slot];
        if m != Sym::MAX && names.get(m) == s {
            return m;
        }
        let v = names.intern(s);
        memo[slot] = v;
        v
    };
    while !rest.is_empty() {
        let (raw_line, complete) = match memchr::memchr(b'\n', rest) {
            Some(i) => {
                let l = &rest[..i];
                rest = &rest[i + 1..];
                (l, true)
            }
            None => {
                let l = rest;
                rest = &[];
                (l, false)
            }
        };
        out.lines += 1;
        let lineno = out.lines;
        let line = raw_line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        let fast = fast_raw(line);
        let raw: Raw = match fast.map_or_else(|| serde_json::from_slice(line), Ok) {
            Ok(r) => r,
            Err(e) if at_end && !complete && e.is_eof() => {
                // A run cut off while writing its last record: keep everything before.
                out.truncated = Some(lineno);
                break;
            }
            Err(e) => {
                let shown: String = String::from_utf8_lossy(&line[..line.len().min(60)]).into();
                out.error = Some((lineno, format!("not a result record ({e}): `{shown}`")));
                break;
            }
        };
        out.records += 1;
        let schema = raw.schema.unwrap_or(0);
        if !out.schemas.iter().any(|s| s.0 == schema) {
            out.schemas.push((schema, lineno));
        }
        match raw.record.as_deref() {
            Some("result") => {}
            // Sweep summaries: the report recomputes knees from the results.
            Some("summary") => continue,
            other => {
                out.other_kinds += 1;
                if out.first_other.is_none() {
                    out.first_other = Some((lineno, other.unwrap_or("(none)").to_string()));
                }
                continue;
            }
        }
        out.results += 1;
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
            board: sym(0, &raw.board, names),
            backend: sym(1, &raw.backend, names),
            ep: sym(2, &raw.ep, names),
            precision: sym(3, &raw.precision, names),
            model: sym(4, &raw.model, names),
            arch: sym(5, &arch, names),
            batch_mode: sym(6, raw.batch_mode.as_deref().unwrap_or(""), names),
            device_id: sym(7, &raw.device_id, names),
            runtime_version: sym(8, raw.runtime_version.as_deref().unwrap_or(""), names),
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
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

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
        let l = load_files(std::slice::from_ref(&f), &[c]).unwrap();
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

    #[test]
    fn tiny_chunks_read_the_same_as_one_chunk() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report");
        let files: Vec<PathBuf> = ["rpi5_a.jsonl", "rpi5_bc.jsonl", "coral.jsonl"]
            .iter()
            .map(|f| root.join(f))
            .collect();
        let chunked = |files: &[PathBuf], chunk| {
            let mut acc = Acc::default();
            load_chunked(files, &[], chunk, &mut acc).and_then(|_| acc.finish())
        };
        let big = chunked(&files, CHUNK).unwrap();
        // 100 bytes: shorter than every line, so each line grows its own buffer.
        for chunk in [100, 2000, 5000] {
            let small = chunked(&files, chunk).unwrap();
            assert_eq!(small.points.len(), big.points.len());
            for (a, b) in small.points.iter().zip(&big.points) {
                assert_eq!(small.names.get(a.model), big.names.get(b.model));
                assert_eq!((a.batch, a.p50.to_bits()), (b.batch, b.p50.to_bits()));
            }
        }
        // Line numbers stay right across chunks.
        let d = tempfile::tempdir().unwrap();
        let text = std::fs::read_to_string(&files[0]).unwrap();
        let bad = write(d.path(), "bad.jsonl", &format!("{text}{text}oops\n"));
        let e = chunked(&[bad], 3000).unwrap_err().to_string();
        assert!(e.contains("bad.jsonl:19: not a result record"), "{e}");
    }

    /// The scanner and serde_json read the same values from every fixture line.
    #[test]
    fn fast_path_agrees_with_serde() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut n = 0;
        for f in [
            "tests/fixtures/report/rpi5_a.jsonl",
            "tests/fixtures/report/coral.jsonl",
            "docs/report-example/x86-ort-1.32.0.jsonl",
        ] {
            for line in std::fs::read_to_string(root.join(f)).unwrap().lines() {
                let a = fast_raw(line.as_bytes()).expect("fixture lines take the fast path");
                let b: Raw = serde_json::from_str(line).unwrap();
                assert_eq!(
                    (
                        &a.record,
                        a.schema,
                        &a.model,
                        &a.arch,
                        a.batch,
                        a.threads,
                        a.ts,
                        a.throttled
                    ),
                    (
                        &b.record,
                        b.schema,
                        &b.model,
                        &b.arch,
                        b.batch,
                        b.threads,
                        b.ts,
                        b.throttled
                    )
                );
                assert_eq!(
                    (
                        a.latency_ms_p50,
                        a.latency_ms_p50_ci_low,
                        a.median_rel_ci,
                        a.throughput_ips_ci_high,
                        a.temp_c_max
                    ),
                    (
                        b.latency_ms_p50,
                        b.latency_ms_p50_ci_low,
                        b.median_rel_ci,
                        b.throughput_ips_ci_high,
                        b.temp_c_max
                    )
                );
                n += 1;
            }
        }
        assert_eq!(n, 25);
        // A wrongly typed value leaves the fast path (serde_json then names the error).
        assert!(fast_raw(br#"{"record":"result","schema":"x"}"#).is_none());
        assert!(fast_raw(br#"{"record":"result","model":"a\u00e9"}"#).is_none());
    }
}
