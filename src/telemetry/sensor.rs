//! One kernel file read again and again: kept open, read with `pread` at offset 0 into
//! a stack buffer, parsed without allocating (sysfs regenerates the value on each read
//! at offset 0; energymon reads INA3221 files the same way).

use std::collections::BTreeSet;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Logical paths (as on the board) of the files read through a recording root. Defined
/// here, below [`super::sysroot`], so that the sensor does not depend on the root that
/// opens it.
pub type Recorder = Arc<Mutex<BTreeSet<String>>>;

/// How failures are logged: at most once a minute per file (vector's rate limit).
const LOG_EVERY: Duration = Duration::from_secs(60);

/// Number base of a file's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Radix {
    /// `48500\n`
    Decimal,
    /// `50005\n` (Raspberry Pi `get_throttled`, hex without `0x`)
    Hex,
}

/// Why a read gave no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The file is not there (not on this board / kernel).
    Missing,
    /// The file exists but we may not read it (e.g. `cpuinfo_cur_freq` is 0400).
    Denied,
    /// The read failed now (EIO, ENODATA, EAGAIN: a sensor that is off or busy).
    Io(io::ErrorKind),
    /// Content is not a number.
    Malformed,
}

impl Failure {
    /// Short human text, for `edgebench probe`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Failure::Missing => "missing",
            Failure::Denied => "permission denied",
            Failure::Io(_) => "read error",
            Failure::Malformed => "not a number",
        }
    }
}

/// An open kernel file holding one integer.
#[derive(Debug)]
pub struct Sensor {
    path: String,
    file: Option<File>,
    radix: Radix,
    min_interval: Duration,
    last_at: Option<Instant>,
    last: Option<i64>,
    failure: Option<Failure>,
    logged_at: Option<Instant>,
    recorder: Option<Recorder>,
    recorded: bool,
}

impl Sensor {
    pub(crate) fn new(
        path: String,
        file: io::Result<File>,
        radix: Radix,
        min_interval: Duration,
        recorder: Option<Recorder>,
    ) -> Sensor {
        let (file, failure) = match file {
            Ok(f) => (Some(f), None),
            Err(e) => (None, Some(failure_of(&e))),
        };
        Sensor {
            path,
            file,
            radix,
            min_interval,
            last_at: None,
            last: None,
            failure,
            logged_at: None,
            recorder,
            recorded: false,
        }
    }

    /// Logical path (as on the board).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// True when the file could be opened.
    pub fn is_open(&self) -> bool {
        self.file.is_some()
    }

    /// Why the last read gave nothing (None after a good read).
    pub fn failure(&self) -> Option<Failure> {
        self.failure
    }

    /// The sensor's own update interval: reads closer together than this reuse the
    /// last value instead of touching the file.
    pub fn set_min_interval(&mut self, d: Duration) {
        self.min_interval = d;
    }

    /// Reads the value now, or reuses the last one if the sensor's update interval has
    /// not passed. None: missing, unreadable or not a number.
    pub fn read(&mut self, now: Instant) -> Option<i64> {
        if let Some(at) = self.last_at {
            if !self.min_interval.is_zero() && now.saturating_duration_since(at) < self.min_interval
            {
                return self.last;
            }
        }
        let value = self.read_now();
        self.last_at = Some(now);
        self.last = value;
        value
    }

    fn read_now(&mut self) -> Option<i64> {
        let file = self.file.as_ref()?;
        let mut buf = [0u8; 64];
        let result = match file.read_at(&mut buf, 0) {
            Ok(n) if n < buf.len() => parse_int(&buf[..n], self.radix).ok_or(Failure::Malformed),
            Ok(_) => Err(Failure::Malformed),
            Err(e) => Err(failure_of(&e)),
        };
        match result {
            Ok(v) => {
                self.failure = None;
                if !self.recorded {
                    self.recorded = true;
                    if let Some(r) = &self.recorder {
                        r.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(self.path.clone());
                    }
                }
                Some(v)
            }
            Err(f) => {
                self.failure = Some(f);
                let due = self.logged_at.is_none_or(|t| t.elapsed() >= LOG_EVERY);
                if due {
                    self.logged_at = Some(Instant::now());
                    log::warn!("telemetry: reading {} failed: {}", self.path, f.as_str());
                }
                None
            }
        }
    }
}

fn failure_of(e: &io::Error) -> Failure {
    match e.kind() {
        io::ErrorKind::NotFound => Failure::Missing,
        io::ErrorKind::PermissionDenied => Failure::Denied,
        k => Failure::Io(k),
    }
}

/// A PCIe device's `power_state` (`D0`, `D3hot`, `D3cold`, `unknown`), kept open and
/// checked before reading the device's sensors: a read from a device in D3cold wakes it
/// (bottom's `is_device_awake`).
#[derive(Debug)]
pub struct PowerState {
    path: String,
    file: File,
}

impl PowerState {
    pub(crate) fn new(path: String, file: File) -> PowerState {
        PowerState { path, file }
    }

    /// `D0` or `unknown` means awake; an unreadable file counts as awake so a kernel
    /// without the attribute still gets read.
    pub fn awake(&self) -> bool {
        let mut buf = [0u8; 16];
        match self.file.read_at(&mut buf, 0) {
            Ok(n) => is_awake(&buf[..n]),
            Err(_) => {
                log::debug!("telemetry: {} unreadable, treating as awake", self.path);
                true
            }
        }
    }
}

/// Whether a `power_state` value means the device may be read.
pub fn is_awake(state: &[u8]) -> bool {
    let s = state.trim_ascii();
    s == b"D0" || s == b"unknown"
}

/// Parses `-12345\n` (or hex `5000f\n`), ignoring surrounding whitespace and NULs.
pub fn parse_int(bytes: &[u8], radix: Radix) -> Option<i64> {
    let is_pad = |b: &u8| b.is_ascii_whitespace() || *b == 0;
    let start = bytes.iter().position(|b| !is_pad(b))?;
    let end = bytes.iter().rposition(|b| !is_pad(b))? + 1;
    let s = std::str::from_utf8(&bytes[start..end]).ok()?;
    match radix {
        Radix::Decimal => s.parse().ok(),
        Radix::Hex => {
            let s = s.trim_start_matches("0x");
            i64::from_str_radix(s, 16).ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kernel_formats() {
        assert_eq!(parse_int(b"48500\n", Radix::Decimal), Some(48500));
        assert_eq!(parse_int(b"-256000\n", Radix::Decimal), Some(-256000));
        assert_eq!(parse_int(b"50005\n", Radix::Hex), Some(0x50005));
        assert_eq!(parse_int(b"0\n", Radix::Hex), Some(0));
        assert_eq!(parse_int(b"\n", Radix::Decimal), None);
        assert_eq!(parse_int(b"D0\n", Radix::Decimal), None);
        assert_eq!(parse_int(b"12 34\n", Radix::Decimal), None);
    }

    #[test]
    fn rereads_the_same_open_file_and_honours_the_update_interval() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("in1_input");
        std::fs::write(&p, b"5000\n").expect("write");
        let mut s = Sensor::new(
            "in1_input".into(),
            File::open(&p),
            Radix::Decimal,
            Duration::from_millis(100),
            None,
        );
        let t0 = Instant::now();
        assert_eq!(s.read(t0), Some(5000));
        std::fs::write(&p, b"5100\n").expect("write");
        // Within the sensor's update interval: the last value, no file read.
        assert_eq!(s.read(t0 + Duration::from_millis(50)), Some(5000));
        assert_eq!(s.read(t0 + Duration::from_millis(100)), Some(5100));
    }

    #[test]
    fn awake_states() {
        assert!(is_awake(b"D0\n"));
        assert!(is_awake(b"unknown\n"));
        assert!(!is_awake(b"D3cold\n"));
        assert!(!is_awake(b"D3hot\n"));
    }

    #[test]
    fn missing_file_is_absent_not_zero() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("nope");
        let mut s = Sensor::new(
            "nope".into(),
            File::open(&p),
            Radix::Decimal,
            Duration::ZERO,
            None,
        );
        assert_eq!(s.read(Instant::now()), None);
        assert_eq!(s.failure(), Some(Failure::Missing));
    }
}
