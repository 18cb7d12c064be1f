//! The results store: append-only JSON Lines on disk, the source of truth.
//!
//! Every record is appended and synced to disk before anyone may publish it. A
//! cursor marks how far the broker has acknowledged; it only moves over records
//! whose QoS 1 publish was acknowledged, and is written atomically (temporary file,
//! fsync, rename). After a reconnect or a restart everything from the cursor on is
//! published again (at least once; consumers de-duplicate on `run_id`).
//!
//! Layout of `store.dir`:
//! - `results-<offset>.jsonl`: segments; `<offset>` (20 digits) is the global byte
//!   offset of the segment's first byte, so offsets stay valid when old segments go;
//! - `cursor`: the acknowledged offset, decimal;
//! - `sweep.json`: the journal of the running sweep; still present at start means
//!   the previous run ended in the middle of a sweep (power loss, `kill -9`).
//!
//! Retention deletes whole segments, oldest first, and only those entirely below
//! the persisted cursor: an unacknowledged record is never dropped.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

const CURSOR: &str = "cursor";
const JOURNAL: &str = "sweep.json";
const SEGMENT_PREFIX: &str = "results-";
const SEGMENT_SUFFIX: &str = ".jsonl";

/// One stored line.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// Global offset of the line's first byte.
    pub offset: u64,
    /// Global offset just after its newline.
    pub end: u64,
    /// The JSON text, without the newline.
    pub line: String,
}

/// What the previous run left behind, found by [`Store::open`].
#[derive(Debug, Default)]
pub struct Recovery {
    /// Bytes of a torn last line (written, never synced as complete) cut off.
    pub truncated_bytes: u64,
    /// The journal of a sweep that never finished.
    pub interrupted: Option<SweepJournal>,
    /// The journal file existed but could not be read.
    pub journal_error: Option<String>,
}

/// Written when a sweep starts and at each configuration; removed when it ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SweepJournal {
    pub sweep: String,
    pub sweep_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    pub started_ms: i64,
    pub done: usize,
    pub total: usize,
    /// The configuration running when the journal was last written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<JournalConfig>,
    /// The one after it (interrupted instead when `current` was already stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<JournalConfig>,
    /// End of the store when `current` started: its record, if any, lies beyond.
    #[serde(default)]
    pub store_end: u64,
}

/// One configuration, as the journal remembers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct JournalConfig {
    /// Position in the plan (the runner's `run_id` suffix).
    pub index: usize,
    pub model: String,
    pub precision: String,
    pub backend: String,
    pub ep: String,
    pub batch: u32,
    pub threads: u32,
}

/// Sizes, for `status-get` and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreStats {
    /// End of durable data.
    pub end: u64,
    /// Acknowledged up to here (in memory).
    pub cursor: u64,
    /// Bytes on disk in segments.
    pub bytes: u64,
    pub segments: usize,
}

#[derive(Debug)]
struct Segment {
    base: u64,
    len: u64,
    path: PathBuf,
}

#[derive(Debug)]
struct Inner {
    segments: Vec<Segment>,
    active: File,
    /// End of written data (the next append's offset).
    written: u64,
    /// End of synced data: readers never see beyond it.
    durable: u64,
    cursor: u64,
    /// Acknowledged ranges beyond a gap (acks out of order): offset -> end.
    acked: BTreeMap<u64, u64>,
    persisted: u64,
}

/// The results store of one directory. Shared between the sweep thread (appends)
/// and the MQTT link (reads, acknowledgements).
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    retention_bytes: u64,
    segment_bytes: u64,
    inner: Mutex<Inner>,
    /// Serialises appenders, so the sync of one append never races another's write.
    append: Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain offsets behind; keep going.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Store {
    /// Opens (or creates) the store in `dir`, repairing a torn last line and
    /// reporting a sweep the previous run left unfinished.
    pub fn open(dir: &Path, retention_bytes: u64) -> Result<(Store, Recovery)> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create store directory {}", dir.display()))?;
        let mut recovery = Recovery::default();
        let cursor_file = read_cursor(dir)?;

        let mut segments = list_segments(dir)?;
        if segments.is_empty() {
            let base = cursor_file.unwrap_or(0);
            let path = segment_path(dir, base);
            File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
            sync_dir(dir)?;
            segments.push(Segment { base, len: 0, path });
        }
        let last = segments.last_mut().expect("at least one segment");
        recovery.truncated_bytes = repair_tail(&last.path)?;
        last.len = std::fs::metadata(&last.path)
            .with_context(|| format!("cannot stat {}", last.path.display()))?
            .len();
        let end = last.base + last.len;
        let active = OpenOptions::new()
            .append(true)
            .open(&last.path)
            .with_context(|| format!("cannot open {} for appending", last.path.display()))?;

        let first = segments[0].base;
        let mut cursor = cursor_file.unwrap_or(first);
        if cursor > end {
            log::warn!(
                "store {}: cursor {cursor} is past the end of the data ({end}); clamping",
                dir.display()
            );
            cursor = end;
        }
        cursor = cursor.max(first);

        match std::fs::read(dir.join(JOURNAL)) {
            Ok(bytes) => match serde_json::from_slice::<SweepJournal>(&bytes) {
                Ok(j) => recovery.interrupted = Some(j),
                Err(e) => {
                    recovery.journal_error = Some(format!("{}: {e}", dir.join(JOURNAL).display()));
                    recovery.interrupted = Some(SweepJournal::default());
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot read {}", dir.join(JOURNAL).display()))
            }
        }

        let segment_bytes = (retention_bytes / 8).clamp(64 * 1024, 4 * 1024 * 1024);
        let store = Store {
            dir: dir.to_path_buf(),
            retention_bytes,
            segment_bytes,
            inner: Mutex::new(Inner {
                segments,
                active,
                written: end,
                durable: end,
                cursor,
                acked: BTreeMap::new(),
                persisted: cursor,
            }),
            append: Mutex::new(()),
        };
        Ok((store, recovery))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends one JSON line (no newline inside) and syncs it to disk. Returns its
    /// `(offset, end)`. Only after this returns may the line be published.
    pub fn append(&self, line: &str) -> Result<(u64, u64)> {
        if line.contains('\n') {
            bail!("a stored record must be one line");
        }
        let _one = lock(&self.append);
        let (offset, end, file) = {
            let mut g = lock(&self.inner);
            let active_len = g.segments.last().map(|s| s.len).unwrap_or(0);
            if active_len >= self.segment_bytes {
                self.roll(&mut g)?;
            }
            let mut bytes = Vec::with_capacity(line.len() + 1);
            bytes.extend_from_slice(line.as_bytes());
            bytes.push(b'\n');
            let offset = g.written;
            if let Err(e) = g.active.write_all(&bytes) {
                // Leave no torn line behind.
                let seg = g.segments.last().expect("active segment");
                let _ = g.active.set_len(seg.len);
                return Err(e).with_context(|| format!("cannot append to {}", seg.path.display()));
            }
            g.written += bytes.len() as u64;
            if let Some(seg) = g.segments.last_mut() {
                seg.len += bytes.len() as u64;
            }
            let file = g
                .active
                .try_clone()
                .context("cannot clone segment handle")?;
            (offset, g.written, file)
        };
        file.sync_data()
            .with_context(|| format!("cannot sync {}", self.dir.display()))?;
        let mut g = lock(&self.inner);
        g.durable = g.durable.max(end);
        Ok((offset, end))
    }

    fn roll(&self, g: &mut Inner) -> Result<()> {
        let base = g.written;
        let path = segment_path(&self.dir, base);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot create segment {}", path.display()))?;
        sync_dir(&self.dir)?;
        g.active = file;
        g.segments.push(Segment { base, len: 0, path });
        Ok(())
    }

    /// Up to `max` durable lines starting at `offset` (a line start, e.g. the cursor
    /// or a previous line's `end`).
    pub fn read_from(&self, offset: u64, max: usize) -> Result<Vec<Stored>> {
        let (segs, durable): (Vec<(u64, u64, PathBuf)>, u64) = {
            let g = lock(&self.inner);
            (
                g.segments
                    .iter()
                    .filter(|s| s.base + s.len > offset)
                    .map(|s| (s.base, s.len, s.path.clone()))
                    .collect(),
                g.durable,
            )
        };
        let mut out = Vec::new();
        let mut pos = offset;
        for (base, len, path) in segs {
            if out.len() >= max || pos >= durable {
                break;
            }
            pos = pos.max(base);
            let seg_end = (base + len).min(durable);
            let mut f = match File::open(&path) {
                Ok(f) => f,
                // Pruned meanwhile: only acknowledged data is pruned, skip it.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
            };
            f.seek(SeekFrom::Start(pos - base))
                .with_context(|| format!("cannot seek in {}", path.display()))?;
            let mut r = BufReader::new(f.take(seg_end - pos));
            let mut buf = Vec::new();
            while out.len() < max && pos < seg_end {
                buf.clear();
                let n = r
                    .read_until(b'\n', &mut buf)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                if n == 0 || buf.last() != Some(&b'\n') {
                    break;
                }
                buf.pop();
                out.push(Stored {
                    offset: pos,
                    end: pos + n as u64,
                    line: String::from_utf8_lossy(&buf).into_owned(),
                });
                pos += n as u64;
            }
        }
        Ok(out)
    }

    /// The broker acknowledged the line at `offset..end`. Moves the cursor over every
    /// contiguous acknowledged line (in memory; see [`Store::persist_cursor`]).
    pub fn ack(&self, offset: u64, end: u64) {
        let mut g = lock(&self.inner);
        if offset < g.cursor {
            return;
        }
        if offset > g.cursor {
            g.acked.insert(offset, end);
            return;
        }
        let mut c = end;
        while let Some(e) = g.acked.remove(&c) {
            c = e;
        }
        g.cursor = c;
        g.acked.retain(|&o, _| o >= c);
    }

    /// The acknowledged offset (in memory).
    pub fn cursor(&self) -> u64 {
        lock(&self.inner).cursor
    }

    /// End of durable data.
    pub fn end(&self) -> u64 {
        lock(&self.inner).durable
    }

    pub fn stats(&self) -> StoreStats {
        let g = lock(&self.inner);
        StoreStats {
            end: g.durable,
            cursor: g.cursor,
            bytes: g.segments.iter().map(|s| s.len).sum(),
            segments: g.segments.len(),
        }
    }

    /// Writes the cursor to disk atomically if it moved, then applies retention.
    /// Blocking (fsync): call it off the async runtime. Returns whether it wrote.
    pub fn persist_cursor(&self) -> Result<bool> {
        let cursor = {
            let g = lock(&self.inner);
            if g.cursor == g.persisted {
                return Ok(false);
            }
            g.cursor
        };
        write_atomic(&self.dir, CURSOR, format!("{cursor}\n").as_bytes())?;
        let mut g = lock(&self.inner);
        g.persisted = g.persisted.max(cursor);
        self.prune(&mut g)?;
        Ok(true)
    }

    /// Deletes the oldest segments while above the retention size, only those
    /// wholly acknowledged (persisted cursor) and never the active one.
    fn prune(&self, g: &mut Inner) -> Result<()> {
        let mut total: u64 = g.segments.iter().map(|s| s.len).sum();
        let mut removed = false;
        while total > self.retention_bytes && g.segments.len() > 1 {
            let s = &g.segments[0];
            if s.base + s.len > g.persisted {
                break;
            }
            std::fs::remove_file(&s.path)
                .or_else(|e| {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })
                .with_context(|| format!("cannot remove {}", s.path.display()))?;
            log::info!(
                "store: pruned acknowledged segment {} ({} bytes)",
                s.path.display(),
                s.len
            );
            total -= s.len;
            g.segments.remove(0);
            removed = true;
        }
        if removed {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Records the running sweep (atomically); call at the start and at each configuration.
    pub fn write_journal(&self, j: &SweepJournal) -> Result<()> {
        let bytes = serde_json::to_vec(j).context("cannot serialise the sweep journal")?;
        write_atomic(&self.dir, JOURNAL, &bytes)
    }

    /// The sweep ended (finished, cancelled, failed): no journal left behind.
    pub fn clear_journal(&self) -> Result<()> {
        match std::fs::remove_file(self.dir.join(JOURNAL)) {
            Ok(()) => sync_dir(&self.dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e)
                .with_context(|| format!("cannot remove {}", self.dir.join(JOURNAL).display())),
        }
    }
}

fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{SEGMENT_PREFIX}{base:020}{SEGMENT_SUFFIX}"))
}

fn list_segments(dir: &Path) -> Result<Vec<Segment>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(base) = name
            .strip_prefix(SEGMENT_PREFIX)
            .and_then(|s| s.strip_suffix(SEGMENT_SUFFIX))
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        let len = entry
            .metadata()
            .with_context(|| format!("cannot stat {}", entry.path().display()))?
            .len();
        out.push(Segment {
            base,
            len,
            path: entry.path(),
        });
    }
    out.sort_by_key(|s| s.base);
    Ok(out)
}

/// Cuts a last line that has no newline (a write the power cut short). Returns the
/// bytes removed.
fn repair_tail(path: &Path) -> Result<u64> {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(0);
    }
    // Scan backwards for the last newline, 64 KiB at a time.
    let mut end = len;
    let mut buf = vec![0u8; 64 * 1024];
    let keep = loop {
        let start = end.saturating_sub(buf.len() as u64);
        let n = (end - start) as usize;
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut buf[..n])
            .with_context(|| format!("cannot read {}", path.display()))?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b == b'\n') {
            break start + i as u64 + 1;
        }
        if start == 0 {
            break 0;
        }
        end = start;
    };
    if keep < len {
        log::warn!(
            "store: cutting a torn last line ({} bytes) from {}",
            len - keep,
            path.display()
        );
        f.set_len(keep)
            .with_context(|| format!("cannot truncate {}", path.display()))?;
        f.sync_all()?;
    }
    Ok(len - keep)
}

fn read_cursor(dir: &Path) -> Result<Option<u64>> {
    let p = dir.join(CURSOR);
    match std::fs::read_to_string(&p) {
        Ok(s) => match s.trim().parse::<u64>() {
            Ok(c) => Ok(Some(c)),
            Err(_) => {
                // Written atomically, so this is damage from outside: resend everything.
                log::warn!(
                    "store: {} holds `{}`, not an offset; publishing every stored record again",
                    p.display(),
                    s.trim()
                );
                Ok(None)
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", p.display())),
    }
}

/// Temporary file, fsync, rename, fsync of the directory.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let dst = dir.join(name);
    let mut f = File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    drop(f);
    std::fs::rename(&tmp, &dst)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), dst.display()))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync directory {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(i: usize) -> String {
        format!(
            r#"{{"record":"result","run_id":"r{i}","pad":"{}"}}"#,
            "x".repeat(1000)
        )
    }

    fn open(dir: &Path, retention: u64) -> (Store, Recovery) {
        Store::open(dir, retention).unwrap()
    }

    #[test]
    fn append_read_ack_and_replay_after_restart() {
        let d = tempfile::tempdir().unwrap();
        let (s, r) = open(d.path(), 1 << 20);
        assert!(r.interrupted.is_none());
        let mut spans = vec![];
        for i in 0..5 {
            spans.push(s.append(&line(i)).unwrap());
        }
        let all = s.read_from(0, 100).unwrap();
        assert_eq!(all.len(), 5);
        assert_eq!(all[2].line, line(2));
        assert_eq!((all[2].offset, all[2].end), spans[2]);
        // Acks out of order: the cursor waits for the gap.
        s.ack(spans[1].0, spans[1].1);
        assert_eq!(s.cursor(), 0);
        s.ack(spans[0].0, spans[0].1);
        assert_eq!(s.cursor(), spans[1].1);
        assert!(s.persist_cursor().unwrap());
        assert!(!s.persist_cursor().unwrap());
        drop(s);

        let (s, _) = open(d.path(), 1 << 20);
        assert_eq!(s.cursor(), spans[1].1);
        let rest = s.read_from(s.cursor(), 100).unwrap();
        assert_eq!(
            rest.iter().map(|x| x.line.clone()).collect::<Vec<_>>(),
            vec![line(2), line(3), line(4)]
        );
        assert_eq!(s.read_from(spans[3].0, 1).unwrap()[0].line, line(3));
    }

    #[test]
    fn unpersisted_acks_are_published_again_after_restart() {
        let d = tempfile::tempdir().unwrap();
        let (s, _) = open(d.path(), 1 << 20);
        let a = s.append(&line(0)).unwrap();
        s.ack(a.0, a.1);
        drop(s); // power lost before the cursor was written
        let (s, _) = open(d.path(), 1 << 20);
        assert_eq!(s.cursor(), 0);
        assert_eq!(s.read_from(0, 10).unwrap().len(), 1);
    }

    #[test]
    fn torn_last_line_is_cut() {
        let d = tempfile::tempdir().unwrap();
        let (s, _) = open(d.path(), 1 << 20);
        s.append(&line(0)).unwrap();
        drop(s);
        let seg = segment_path(d.path(), 0);
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(b"{\"record\":\"res").unwrap();
        drop(f);
        let (s, r) = open(d.path(), 1 << 20);
        assert_eq!(r.truncated_bytes, 14);
        assert_eq!(s.read_from(0, 10).unwrap().len(), 1);
        let b = s.append(&line(1)).unwrap();
        let all = s.read_from(0, 10).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].offset, b.0);
        assert_eq!(all[1].line, line(1));
    }

    #[test]
    fn retention_prunes_only_acknowledged_segments_oldest_first() {
        let d = tempfile::tempdir().unwrap();
        // retention 200 KiB -> 64 KiB segments; each line ~1 KiB.
        let (s, _) = open(d.path(), 200 * 1024);
        let mut spans = vec![];
        for i in 0..600 {
            spans.push(s.append(&line(i)).unwrap());
        }
        let st = s.stats();
        assert!(st.segments > 4, "{st:?}");
        // Nothing acknowledged: nothing pruned, whatever the size.
        s.persist_cursor().unwrap();
        assert_eq!(s.stats().segments, st.segments);
        // Acknowledge half.
        for sp in &spans[..300] {
            s.ack(sp.0, sp.1);
        }
        assert!(s.persist_cursor().unwrap());
        let after = s.stats();
        assert!(after.segments < st.segments, "{after:?}");
        // Every unacknowledged record is still readable, in order.
        let rest = s.read_from(s.cursor(), 10_000).unwrap();
        assert_eq!(rest.len(), 300);
        assert_eq!(rest[0].line, line(300));
        assert_eq!(rest[299].line, line(599));
        // The oldest remaining segment starts at or before the cursor.
        drop(s);
        let (s, _) = open(d.path(), 200 * 1024);
        assert_eq!(s.read_from(s.cursor(), 10_000).unwrap().len(), 300);
    }

    #[test]
    fn journal_survives_a_crash_and_clears() {
        let d = tempfile::tempdir().unwrap();
        let (s, _) = open(d.path(), 1 << 20);
        let j = SweepJournal {
            sweep: "quick".into(),
            sweep_id: "s1".into(),
            request_id: Some("r1".into()),
            started_ms: 5,
            done: 2,
            total: 4,
            current: Some(JournalConfig {
                model: "m".into(),
                batch: 4,
                ..Default::default()
            }),
            next: None,
            store_end: 7,
        };
        s.write_journal(&j).unwrap();
        drop(s);
        let (s, r) = open(d.path(), 1 << 20);
        assert_eq!(r.interrupted.as_ref(), Some(&j));
        s.clear_journal().unwrap();
        drop(s);
        let (_, r) = open(d.path(), 1 << 20);
        assert!(r.interrupted.is_none());
    }

    #[test]
    fn damaged_cursor_means_resend_everything() {
        let d = tempfile::tempdir().unwrap();
        let (s, _) = open(d.path(), 1 << 20);
        s.append(&line(0)).unwrap();
        drop(s);
        std::fs::write(d.path().join(CURSOR), "garbage").unwrap();
        let (s, _) = open(d.path(), 1 << 20);
        assert_eq!(s.cursor(), 0);
        std::fs::write(d.path().join(CURSOR), "99999999").unwrap();
        drop(s);
        let (s, _) = open(d.path(), 1 << 20);
        assert_eq!(s.cursor(), s.end());
    }

    #[test]
    fn multi_line_records_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let (s, _) = open(d.path(), 1 << 20);
        assert!(s.append("a\nb").is_err());
    }
}
