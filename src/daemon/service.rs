//! systemd integration: readiness and watchdog notifications, journal logging.
//!
//! `sd_notify` is a datagram to `$NOTIFY_SOCKET` (a path, or an abstract socket when
//! it starts with `@`); sent by hand to keep the dependency list short. Nothing is
//! sent when the variable is unset (started outside systemd).

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

/// The notification socket systemd gave us.
#[derive(Debug, Clone)]
pub struct Notifier {
    target: Option<Target>,
}

#[derive(Debug, Clone)]
enum Target {
    Path(PathBuf),
    Abstract(Vec<u8>),
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`.
    pub fn from_env() -> Notifier {
        Notifier::from_value(std::env::var_os("NOTIFY_SOCKET"))
    }

    fn from_value(v: Option<std::ffi::OsString>) -> Notifier {
        use std::os::unix::ffi::OsStrExt;
        let target = v.filter(|v| !v.is_empty()).map(|v| {
            let b = v.as_bytes();
            match b.strip_prefix(b"@") {
                Some(name) => Target::Abstract(name.to_vec()),
                None => Target::Path(PathBuf::from(v)),
            }
        });
        Notifier { target }
    }

    /// Whether systemd listens.
    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Sends `state` (e.g. `READY=1\nSTATUS=idle`). Failures are logged, not fatal.
    pub fn notify(&self, state: &str) {
        let Some(t) = &self.target else { return };
        if let Err(e) = send(t, state.as_bytes()) {
            log::warn!("sd_notify failed: {e}");
        }
    }

    pub fn ready(&self, status: &str) {
        self.notify(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    pub fn status(&self, status: &str) {
        self.notify(&format!("STATUS={}", one_line(status)));
    }

    pub fn watchdog(&self) {
        self.notify("WATCHDOG=1");
    }

    pub fn stopping(&self, status: &str) {
        self.notify(&format!("STOPPING=1\nSTATUS={}", one_line(status)));
    }

    /// For `Type=notify-reload`; harmless with `Type=notify`.
    pub fn reloading(&self) {
        let mono = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
            .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1000)
            .unwrap_or(0);
        self.notify(&format!("RELOADING=1\nMONOTONIC_USEC={mono}"));
    }
}

fn one_line(s: &str) -> String {
    s.replace('\n', " ")
}

fn send(t: &Target, msg: &[u8]) -> std::io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    match t {
        Target::Path(p) => sock.send_to(msg, p)?,
        Target::Abstract(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(msg, &addr)?
        }
    };
    Ok(())
}

/// The watchdog period systemd asked for (`$WATCHDOG_USEC`, for this process).
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Some(pid) = std::env::var("WATCHDOG_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
    {
        if pid != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Logs to the journal when stderr is connected to it (started by systemd), else to
/// stderr. Level from `EDGEBENCH_LOG` (`error`..`trace`, default `info`); rumqttc's
/// own chatter is kept at `warn`.
pub fn init_logging() {
    let level = std::env::var("EDGEBENCH_LOG")
        .ok()
        .and_then(|l| l.parse::<log::LevelFilter>().ok())
        .unwrap_or(log::LevelFilter::Info);
    let installed = if systemd_journal_logger::connected_to_journal() {
        systemd_journal_logger::JournalLog::new()
            .map(|j| j.with_syslog_identifier("edgebench".into()))
            .and_then(|j| {
                log::set_boxed_logger(Box::new(Filtered { inner: j, level }))
                    .map_err(std::io::Error::other)
            })
            .is_ok()
    } else {
        false
    };
    if !installed {
        let _ = log::set_boxed_logger(Box::new(Filtered {
            inner: Stderr,
            level,
        }));
    }
    log::set_max_level(level);
}

/// Drops other crates' records below `warn` unless asked for debug output.
struct Filtered<L> {
    inner: L,
    level: log::LevelFilter,
}

impl<L: log::Log> log::Log for Filtered<L> {
    fn enabled(&self, m: &log::Metadata) -> bool {
        let ours = m.target().starts_with("edgebench");
        let max = if ours || self.level >= log::LevelFilter::Debug {
            self.level
        } else {
            self.level.min(log::LevelFilter::Warn)
        };
        m.level() <= max
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            self.inner.log(r);
        }
    }
    fn flush(&self) {
        self.inner.flush();
    }
}

struct Stderr;

impl log::Log for Stderr {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, r: &log::Record) {
        let mut e = std::io::stderr().lock();
        let _ = writeln!(
            e,
            "edgebench[{}]: {}: {}",
            std::process::id(),
            r.level().as_str().to_ascii_lowercase(),
            r.args()
        );
    }
    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifies_a_path_socket() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("notify");
        let rx = UnixDatagram::bind(&p).unwrap();
        let n = Notifier::from_value(Some(p.clone().into_os_string()));
        assert!(n.enabled());
        n.ready("idle\nsecond line");
        let mut buf = [0u8; 256];
        let k = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..k], b"READY=1\nSTATUS=idle second line");
    }

    #[test]
    fn notifies_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("edgebench-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        let n = Notifier::from_value(Some(format!("@{name}").into()));
        n.watchdog();
        let mut buf = [0u8; 64];
        let k = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..k], b"WATCHDOG=1");
    }

    #[test]
    fn silent_without_a_socket() {
        let n = Notifier::from_value(None);
        assert!(!n.enabled());
        n.ready("x"); // no panic, nothing sent
    }
}
