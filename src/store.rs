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
//! Space (`[store]`): retention deletes whole segments, oldest first, only those
//! entirely acknowledged, while the segments exceed `retention_mb`. Before each
//! append two limits are checked: the segments' total against `max_bytes`, and the
//! free space of the filesystem (statvfs) against `min_free_bytes`. When either
//! would be crossed, acknowledged segments go first (whatever the retention); if
//! that is not enough, `when_full` decides: `"refuse"` (default) refuses the new
//! record, so nothing stored is ever dropped (the sweep stops with a `store full`
//! error, commands and draining go on, appends work again once space returns);
//! `"drop_oldest"` deletes the oldest unacknowledged segments, counted in
//! `dropped_bytes` and logged, so the newest results are kept. Either way the
//! condition shows as `store_alarm` in `status-get` and telemetry.
//!
//! Locks: `inner` (offsets) is what the async runtime takes (reads, acks, stats);
//! it is never held across an fsync, a directory sync or a file removal. Appenders
//! serialise on `append`, cursor writers on `persist` (so two writers never race on
//! the cursor's temporary file, and an older cursor never overwrites a newer one).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::config::StoreConfig;

const CURSOR: &str = "cursor";
const JOURNAL: &str = "sweep.json";
const SEGMENT_PREFIX: &str = "results-";
const SEGMENT_SUFFIX: &str = ".jsonl";
/// Room a typical record needs, for deciding that a refusal is over.
const TYPICAL_RECORD: u64 = 4096;

/// What to do when the limits are reached and only unacknowledged data is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// Refuse new records; keep everything stored.
    Refuse,
    /// Delete the oldest unacknowledged segments to make room.
    DropOldest,
}

/// Size limits of a store (from `[store]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Acknowledged segments are pruned, oldest first, while the total is above this.
    pub retention_bytes: u64,
    /// Hard cap on all segments (0: none).
    pub max_bytes: u64,
    /// Free space to leave on the filesystem (0: no guard).
    pub min_free_bytes: u64,
    pub when_full: WhenFull,
}

impl Limits {
    /// Only the retention size (no cap, no free-space guard).
    pub fn retention(bytes: u64) -> Limits {
        Limits {
            retention_bytes: bytes,
            max_bytes: 0,
            min_free_bytes: 0,
            when_full: WhenFull::Refuse,
        }
    }

    /// From `[store]`; errors name the key.
    pub fn from_config(c: &StoreConfig) -> Result<Limits> {
        let when_full = match c.when_full.as_str() {
            "refuse" => WhenFull::Refuse,
            "drop_oldest" => WhenFull::DropOldest,
            other => {
                bail!("store.when_full must be \"refuse\" or \"drop_oldest\", got \"{other}\"")
            }
        };
        if c.max_bytes != 0 && c.max_bytes < 64 * 1024 {
            bail!(
                "store.max_bytes must be 0 (no cap) or at least 65536, got {}",
                c.max_bytes
            );
        }
        Ok(Limits {
            retention_bytes: c.retention_mb << 20,
            max_bytes: c.max_bytes,
            min_free_bytes: c.min_free_bytes,
            when_full,
        })
    }

    fn segment_bytes(&self) -> u64 {
        let basis = match self.max_bytes {
            0 => self.retention_bytes,
            m => m.min(self.retention_bytes),
        };
        (basis / 8).clamp(4 * 1024, 4 * 1024 * 1024)
    }
}

/// An append the limits did not allow (policy `refuse`).
#[derive(Debug, thiserror::Error)]
#[error("store {dir} is full: {why}; nothing stored was dropped (store.when_full = \"refuse\"): free space, let the broker drain it, or raise store.max_bytes")]
pub struct StoreFull {
    pub dir: String,
    pub why: String,
}

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
    /// The runner's `run_id` suffix: the position in the plan, or for a knee search
    /// (`--batch auto`) the point's number.
    pub index: usize,
    /// Position of the configuration in the plan when it differs from `index` (a
    /// knee search's point).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<usize>,
    pub model: String,
    pub precision: String,
    pub backend: String,
    pub ep: String,
    pub batch: u32,
    pub threads: u32,
}

/// Sizes, for `status-get`, telemetry and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreStats {
    /// End of durable data.
    pub end: u64,
    /// Acknowledged up to here (in memory).
    pub cursor: u64,
    /// Bytes on disk in segments.
    pub bytes: u64,
    pub segments: usize,
    /// Free bytes on the store's filesystem at the last check (None: unknown).
    pub free_bytes: Option<u64>,
    /// Unacknowledged bytes deleted by `when_full = "drop_oldest"` since start.
    pub dropped_bytes: u64,
    /// `"full"` (appends refused), `"dropped"` (unacknowledged data deleted since
    /// start), `"low_space"` (near `min_free_bytes` or `max_bytes`), or none.
    pub alarm: Option<&'static str>,
}

impl StoreStats {
    /// Bytes stored and not yet acknowledged.
    pub fn unsent(&self) -> u64 {
        self.end.saturating_sub(self.cursor)
    }
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
    /// End of synced data: readers never see beyond it, the next append starts here.
    durable: u64,
    cursor: u64,
    /// Acknowledged ranges beyond a gap (acks out of order): offset -> end.
    acked: BTreeMap<u64, u64>,
    persisted: u64,
    free_bytes: Option<u64>,
    dropped_bytes: u64,
    /// Why the last append was refused (cleared when one fits again).
    refused: Option<String>,
}

impl Inner {
    fn total(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum()
    }
}

/// The appenders' state: the file being appended to, and records waiting for room.
#[derive(Debug)]
struct Appender {
    active: File,
    deferred: Vec<String>,
}

/// Which segments [`Store::remove_oldest`] may delete.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Removable {
    /// Wholly below this (persisted or in-memory) cursor.
    AckedBelow(u64),
    /// Anything (policy `drop_oldest`).
    Any,
}

/// The results store of one directory. Shared between the sweep thread (appends)
/// and the MQTT link (reads, acknowledgements).
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    limits: Limits,
    segment_bytes: u64,
    inner: Mutex<Inner>,
    /// Serialises appenders, so the sync of one append never races another's write.
    append: Mutex<Appender>,
    /// Serialises cursor writes.
    persist: Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain offsets behind; keep going.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Store {
    /// Opens (or creates) the store in `dir` with only a retention size.
    pub fn open(dir: &Path, retention_bytes: u64) -> Result<(Store, Recovery)> {
        Store::open_with(dir, Limits::retention(retention_bytes))
    }

    /// Opens (or creates) the store in `dir`, repairing a torn last line and
    /// reporting a sweep the previous run left unfinished. Works on a full disk
    /// (nothing here needs new space but an empty first segment).
    pub fn open_with(dir: &Path, limits: Limits) -> Result<(Store, Recovery)> {
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
        // Segments below the cursor file's offset may be gone (pruned before the
        // cursor was written): they were acknowledged, start at the first one left.
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

        let store = Store {
            dir: dir.to_path_buf(),
            limits,
            segment_bytes: limits.segment_bytes(),
            inner: Mutex::new(Inner {
                segments,
                durable: end,
                cursor,
                acked: BTreeMap::new(),
                persisted: cursor,
                free_bytes: free_space(dir),
                dropped_bytes: 0,
                refused: None,
            }),
            append: Mutex::new(Appender {
                active,
                deferred: Vec::new(),
            }),
            persist: Mutex::new(()),
        };
        Ok((store, recovery))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Appends one JSON line (no newline inside) and syncs it to disk. Returns its
    /// `(offset, end)`. Only after this returns may the line be published. Fails
    /// with [`StoreFull`] when the limits leave no room (policy `refuse`).
    pub fn append(&self, line: &str) -> Result<(u64, u64)> {
        if line.contains('\n') {
            bail!("a stored record must be one line");
        }
        let mut a = lock(&self.append);
        while !a.deferred.is_empty() {
            let first = a.deferred[0].clone();
            self.append_locked(&mut a, &first)?;
            a.deferred.remove(0);
            log::info!("store: stored a record that waited for room");
        }
        self.append_locked(&mut a, line)
    }

    /// Appends `line` now or, when the store is full, keeps it in memory and stores
    /// it before the next record that fits (lost if the process stops first).
    /// Returns whether it was stored now.
    pub fn append_or_defer(&self, line: &str) -> Result<bool> {
        match self.append(line) {
            Ok(_) => Ok(true),
            Err(e) if is_enospc(&e) => {
                log::warn!("store: full; a record waits in memory for room: {e:#}");
                lock(&self.append).deferred.push(line.to_string());
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    fn append_locked(&self, a: &mut Appender, line: &str) -> Result<(u64, u64)> {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        let n = bytes.len() as u64;
        self.make_room(a, n)?;

        let (active_len, offset) = {
            let g = lock(&self.inner);
            (g.segments.last().map(|s| s.len).unwrap_or(0), g.durable)
        };
        let active_len = if active_len >= self.segment_bytes {
            self.roll(a, offset)?;
            0
        } else {
            active_len
        };
        // Only appenders move `durable`, and they hold `append`: no lock needed for
        // the write and the sync.
        let written = a
            .active
            .write_all(&bytes)
            .and_then(|_| a.active.sync_data());
        if let Err(e) = written {
            // Leave no torn or unsynced line behind.
            let _ = a.active.set_len(active_len);
            let enospc = e.raw_os_error() == Some(libc::ENOSPC);
            if enospc {
                lock(&self.inner).refused = Some("no space left on the device".into());
            }
            let err = anyhow::Error::new(e).context(format!(
                "cannot append to the store in {}",
                self.dir.display()
            ));
            if enospc {
                return Err(err.context(StoreFull {
                    dir: self.dir.display().to_string(),
                    why: "no space left on the device".into(),
                }));
            }
            return Err(err);
        }
        let end = offset + n;
        let mut g = lock(&self.inner);
        if let Some(seg) = g.segments.last_mut() {
            seg.len += n;
        }
        g.durable = end;
        if g.refused.take().is_some() {
            log::info!("store {}: appending again", self.dir.display());
        }
        Ok((offset, end))
    }

    /// Frees room for `need` more bytes under the limits, or refuses.
    fn make_room(&self, a: &mut Appender, need: u64) -> Result<()> {
        let l = self.limits;
        if l.max_bytes == 0 && l.min_free_bytes == 0 {
            return Ok(());
        }
        loop {
            let free = if l.min_free_bytes > 0 {
                free_space(&self.dir)
            } else {
                None
            };
            let (total, cursor, segs, active_len, end) = {
                let mut g = lock(&self.inner);
                g.free_bytes = free.or(g.free_bytes);
                (
                    g.total(),
                    g.cursor,
                    g.segments.len(),
                    g.segments.last().map(|s| s.len).unwrap_or(0),
                    g.durable,
                )
            };
            let over_cap = l.max_bytes > 0 && total + need > l.max_bytes;
            let low = l.min_free_bytes > 0 && free.is_some_and(|f| f < need + l.min_free_bytes);
            if !over_cap && !low {
                return Ok(());
            }
            // Acknowledged data goes first, whatever the retention.
            if self.remove_oldest(Removable::AckedBelow(cursor))? {
                continue;
            }
            let policy_drop = l.when_full == WhenFull::DropOldest;
            // The active segment can only go once it is not active any more.
            if segs == 1 && active_len > 0 && (cursor >= end || policy_drop) {
                self.roll(a, end)?;
                continue;
            }
            if policy_drop && self.remove_oldest(Removable::Any)? {
                continue;
            }
            let why = if over_cap {
                format!(
                    "{total} bytes of unacknowledged results, store.max_bytes is {}",
                    l.max_bytes
                )
            } else {
                format!(
                    "{} bytes free on its filesystem, store.min_free_bytes is {}",
                    free.unwrap_or(0),
                    l.min_free_bytes
                )
            };
            let mut g = lock(&self.inner);
            if g.refused.as_deref() != Some(why.as_str()) {
                log::error!(
                    "store {}: full, refusing new records: {why}",
                    self.dir.display()
                );
            }
            g.refused = Some(why.clone());
            return Err(StoreFull {
                dir: self.dir.display().to_string(),
                why,
            }
            .into());
        }
    }

    /// Starts a new segment at `base` (the current end). Holds no `inner` lock
    /// across the file creation and the directory sync.
    fn roll(&self, a: &mut Appender, base: u64) -> Result<()> {
        let path = segment_path(&self.dir, base);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot create segment {}", path.display()))?;
        sync_dir(&self.dir)?;
        a.active = file;
        lock(&self.inner)
            .segments
            .push(Segment { base, len: 0, path });
        Ok(())
    }

    /// Deletes the oldest segment if `what` allows it (never the active one).
    /// Returns whether one went. The file is removed after the lock is released.
    fn remove_oldest(&self, what: Removable) -> Result<bool> {
        let seg = {
            let mut g = lock(&self.inner);
            if g.segments.len() < 2 {
                return Ok(false);
            }
            let (base, end, path) = {
                let s = &g.segments[0];
                (s.base, s.base + s.len, s.path.clone())
            };
            match what {
                Removable::AckedBelow(c) if end > c => return Ok(false),
                Removable::AckedBelow(_) => {}
                Removable::Any => {
                    if end > g.cursor {
                        let lost = end - g.cursor.max(base);
                        g.dropped_bytes += lost;
                        let next = g.segments[1].base;
                        g.cursor = g.cursor.max(next);
                        let c = g.cursor;
                        g.acked.retain(|&o, _| o >= c);
                        log::error!(
                            "store {}: full; dropped {lost} bytes of unacknowledged results ({}) under store.when_full = \"drop_oldest\"",
                            self.dir.display(),
                            path.display()
                        );
                    }
                }
            }
            g.segments.remove(0)
        };
        match std::fs::remove_file(&seg.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("cannot remove {}", seg.path.display()))
            }
        }
        log::info!(
            "store: removed segment {} ({} bytes)",
            seg.path.display(),
            seg.len
        );
        sync_dir(&self.dir)?;
        Ok(true)
    }

    /// Up to `max` durable lines starting at `offset` (a line start, e.g. the cursor
    /// or a previous line's `end`). Lines of segments deleted meanwhile are skipped.
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
                // Deleted meanwhile (acknowledged, or dropped when full): skip it.
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

    /// Sizes and the alarm, from memory (no system call: cheap on the runtime).
    pub fn stats(&self) -> StoreStats {
        let g = lock(&self.inner);
        let l = self.limits;
        let total = g.total();
        let low = (l.min_free_bytes > 0
            && g.free_bytes
                .is_some_and(|f| f < l.min_free_bytes + TYPICAL_RECORD))
            || (l.max_bytes > 0 && (g.durable - g.cursor) + TYPICAL_RECORD > l.max_bytes);
        let alarm = if g.refused.is_some() {
            Some("full")
        } else if g.dropped_bytes > 0 {
            Some("dropped")
        } else if low {
            Some("low_space")
        } else {
            None
        };
        StoreStats {
            end: g.durable,
            cursor: g.cursor,
            bytes: total,
            segments: g.segments.len(),
            free_bytes: g.free_bytes,
            dropped_bytes: g.dropped_bytes,
            alarm,
        }
    }

    /// Measures the free space again (statvfs; blocking, call it off the runtime)
    /// and lifts a refusal once a typical record fits again.
    pub fn refresh_space(&self) -> StoreStats {
        let free = free_space(&self.dir);
        {
            let mut g = lock(&self.inner);
            g.free_bytes = free.or(g.free_bytes);
            let l = self.limits;
            let fits_free = l.min_free_bytes == 0
                || g.free_bytes
                    .is_some_and(|f| f >= l.min_free_bytes + TYPICAL_RECORD);
            // Acknowledged segments can be pruned at the next append.
            let fits_cap =
                l.max_bytes == 0 || (g.durable - g.cursor) + TYPICAL_RECORD <= l.max_bytes;
            if g.refused.is_some() && fits_free && fits_cap {
                log::info!("store {}: space available again", self.dir.display());
                g.refused = None;
            }
        }
        self.stats()
    }

    /// Writes the cursor to disk atomically if it moved, then applies retention.
    /// Blocking (fsync): call it off the async runtime. Returns whether it wrote.
    /// On a full disk, acknowledged segments are deleted first to make room.
    pub fn persist_cursor(&self) -> Result<bool> {
        let _one = lock(&self.persist);
        let cursor = {
            let g = lock(&self.inner);
            if g.cursor == g.persisted {
                return Ok(false);
            }
            g.cursor
        };
        let text = format!("{cursor}\n");
        if let Err(e) = write_atomic(&self.dir, CURSOR, text.as_bytes()) {
            if !is_enospc(&e) {
                return Err(e);
            }
            // Deleting segments below the in-memory cursor is safe before it is
            // written: a restart clamps an older cursor to the first segment left.
            let mut freed = false;
            while self.remove_oldest(Removable::AckedBelow(cursor))? {
                freed = true;
            }
            if !freed {
                return Err(e);
            }
            write_atomic(&self.dir, CURSOR, text.as_bytes())?;
        }
        {
            let mut g = lock(&self.inner);
            g.persisted = g.persisted.max(cursor);
        }
        self.prune()?;
        Ok(true)
    }

    /// Deletes the oldest segments while above the retention size, only those
    /// wholly acknowledged (persisted cursor) and never the active one.
    fn prune(&self) -> Result<()> {
        loop {
            let persisted = {
                let g = lock(&self.inner);
                if g.total() <= self.limits.retention_bytes {
                    return Ok(());
                }
                g.persisted
            };
            if !self.remove_oldest(Removable::AckedBelow(persisted))? {
                return Ok(());
            }
        }
    }

    /// Records the running sweep (atomically); call at the start and at each configuration.
    pub fn write_journal(&self, j: &SweepJournal) -> Result<()> {
        let bytes = serde_json::to_vec(j).context("cannot serialise the sweep journal")?;
        let r = write_atomic(&self.dir, JOURNAL, &bytes);
        if let Err(e) = &r {
            if is_enospc(e) {
                lock(&self.inner).refused = Some("no space left on the device".into());
            }
        }
        r
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

/// Whether `e` comes from ENOSPC (or a quota).
pub fn is_enospc(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .and_then(|io| io.raw_os_error())
            .is_some_and(|n| n == libc::ENOSPC || n == libc::EDQUOT)
            || c.downcast_ref::<StoreFull>().is_some()
    })
}

/// Bytes available to this user on the filesystem of `dir`.
fn free_space(dir: &Path) -> Option<u64> {
    let s = nix::sys::statvfs::statvfs(dir).ok()?;
    Some((s.blocks_available() as u64).saturating_mul(s.fragment_size() as u64))
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

    fn limits(max: u64, when_full: WhenFull) -> Limits {
        Limits {
            retention_bytes: 1 << 30,
            max_bytes: max,
            min_free_bytes: 0,
            when_full,
        }
    }

    #[test]
    fn at_the_cap_refuse_keeps_everything_and_lifts_when_acknowledged() {
        let d = tempfile::tempdir().unwrap();
        let (s, _) = Store::open_with(d.path(), limits(64 * 1024, WhenFull::Refuse)).unwrap();
        let mut spans = vec![];
        let err = loop {
            match s.append(&line(spans.len())) {
                Ok(sp) => spans.push(sp),
                Err(e) => break e,
            }
            assert!(spans.len() < 100, "never refused");
        };
        assert!(err.downcast_ref::<StoreFull>().is_some(), "{err:#}");
        assert!(is_enospc(&err));
        assert!(format!("{err:#}").contains("store.max_bytes"), "{err:#}");
        let st = s.stats();
        assert_eq!(st.alarm, Some("full"));
        assert!(st.bytes <= 64 * 1024, "{st:?}");
        assert_eq!(st.dropped_bytes, 0);
        // Nothing stored was dropped.
        let all = s.read_from(0, 1000).unwrap();
        assert_eq!(all.len(), spans.len());
        assert_eq!(all.last().unwrap().line, line(spans.len() - 1));
        // The broker acknowledges half: room again, oldest acknowledged go first.
        for sp in &spans[..spans.len() / 2] {
            s.ack(sp.0, sp.1);
        }
        // Acknowledged segments make room: the refusal is over.
        assert_eq!(s.refresh_space().alarm, None);
        let n = spans.len();
        s.append(&line(n)).unwrap();
        let st = s.stats();
        assert_eq!(st.alarm, None, "{st:?}");
        let rest = s.read_from(s.cursor(), 1000).unwrap();
        assert_eq!(rest.len(), n - n / 2 + 1);
        assert_eq!(rest[0].line, line(n / 2));
        assert_eq!(rest.last().unwrap().line, line(n));
    }

    #[test]
    fn at_the_cap_drop_oldest_keeps_the_newest_and_counts_the_loss() {
        let d = tempfile::tempdir().unwrap();
        let (s, _) = Store::open_with(d.path(), limits(64 * 1024, WhenFull::DropOldest)).unwrap();
        for i in 0..300 {
            s.append(&line(i)).unwrap();
        }
        let st = s.stats();
        assert!(st.bytes <= 64 * 1024, "{st:?}");
        assert!(st.dropped_bytes > 200 * 1000, "{st:?}");
        assert_eq!(st.alarm, Some("dropped"));
        // What is left is contiguous and ends with the newest record.
        let rest = s.read_from(s.cursor(), 1000).unwrap();
        let first: usize = rest[0].line[30..]
            .split('"')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(rest.len(), 300 - first, "contiguous from r{first}");
        assert_eq!(rest.last().unwrap().line, line(299));
        assert_eq!(rest.len() as u64 * 1045, st.end - st.cursor);
        // A restart starts at the first segment left.
        drop(s);
        let (s, _) = Store::open_with(d.path(), limits(64 * 1024, WhenFull::DropOldest)).unwrap();
        assert_eq!(s.read_from(s.cursor(), 1000).unwrap().len(), rest.len());
    }

    #[test]
    fn free_space_guard_refuses_with_the_key_named() {
        let d = tempfile::tempdir().unwrap();
        let mut l = limits(0, WhenFull::Refuse);
        l.min_free_bytes = u64::MAX / 4;
        let (s, _) = Store::open_with(d.path(), l).unwrap();
        let e = s.append(&line(0)).unwrap_err();
        assert!(format!("{e:#}").contains("store.min_free_bytes"), "{e:#}");
        let st = s.refresh_space();
        assert_eq!(st.alarm, Some("full"));
        assert!(st.free_bytes.is_some_and(|f| f > 0));
        assert_eq!(s.end(), 0, "nothing half-written");
    }

    #[test]
    fn concurrent_cursor_writers_never_leave_an_older_cursor() {
        let d = tempfile::tempdir().unwrap();
        let (s, _) = open(d.path(), 1 << 30);
        let spans: Vec<_> = (0..200).map(|i| s.append(&line(i)).unwrap()).collect();
        let s = std::sync::Arc::new(s);
        std::thread::scope(|sc| {
            for t in 0..4 {
                let s = s.clone();
                let spans = &spans;
                sc.spawn(move || {
                    for (i, sp) in spans.iter().enumerate() {
                        if i % 4 == t {
                            s.ack(sp.0, sp.1);
                        }
                        s.persist_cursor().unwrap();
                    }
                });
            }
        });
        s.persist_cursor().unwrap();
        assert_eq!(s.cursor(), spans[199].1);
        let on_disk = std::fs::read_to_string(d.path().join(CURSOR)).unwrap();
        assert_eq!(on_disk.trim(), spans[199].1.to_string());
        assert!(!d.path().join(".cursor.tmp").exists());
    }

    #[test]
    fn limits_from_config_name_bad_values() {
        let mut c = StoreConfig::default();
        let l = Limits::from_config(&c).unwrap();
        assert_eq!(l.when_full, WhenFull::Refuse);
        assert_eq!(l.max_bytes, 256 << 20);
        c.when_full = "panic".into();
        let e = Limits::from_config(&c).unwrap_err().to_string();
        assert!(e.contains("store.when_full"), "{e}");
        c.when_full = "drop_oldest".into();
        c.max_bytes = 10;
        let e = Limits::from_config(&c).unwrap_err().to_string();
        assert!(e.contains("store.max_bytes"), "{e}");
    }

    #[test]
    fn multi_line_records_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let (s, _) = open(d.path(), 1 << 20);
        assert!(s.append("a\nb").is_err());
    }
}
