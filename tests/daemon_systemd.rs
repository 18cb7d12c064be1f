//! The daemon's systemd protocol, observed the way systemd sees it: a datagram
//! socket in `$NOTIFY_SOCKET`, `$WATCHDOG_USEC`, signals.

#[path = "common/broker.rs"]
mod broker;
mod common;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use broker::{free_port, wait_until, DaemonProc};

const T: Duration = Duration::from_secs(20);

fn config(dir: &Path, port: u16, extra: &str) -> std::path::PathBuf {
    let p = dir.join("edgebench.toml");
    std::fs::write(
        &p,
        format!(
            r#"
[device]
id = "board-1"
[onnxruntime]
library = "{lib}"
[models]
dir = "{models}"
[store]
dir = "{store}"
[mqtt]
host = "127.0.0.1"
port = {port}
backoff_min_s = 0.2
backoff_max_s = 1.0
[sweeps.tiny]
models = ["tiny_cnn"]
batches = [1]
eps = ["cpu"]
threads = [1]
{extra}
"#,
            lib = common::ort_lib().display(),
            models = common::fixture_models().display(),
            store = dir.join("store").display(),
        ),
    )
    .unwrap();
    p
}

/// Collects every notification datagram.
struct Notify {
    msgs: Arc<Mutex<Vec<String>>>,
}

impl Notify {
    fn bind(path: &Path) -> Notify {
        let sock = UnixDatagram::bind(path).expect("bind notify socket");
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let msgs = Arc::new(Mutex::new(Vec::new()));
        let m = msgs.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match sock.recv(&mut buf) {
                    Ok(n) => m
                        .lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock
                            || e.kind() == std::io::ErrorKind::TimedOut =>
                    {
                        if Arc::strong_count(&m) == 1 {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        });
        Notify { msgs }
    }

    fn all(&self) -> Vec<String> {
        self.msgs.lock().unwrap().clone()
    }

    fn count(&self, needle: &str) -> usize {
        self.all().iter().filter(|m| m.contains(needle)).count()
    }
}

#[test]
fn ready_without_a_broker_watchdog_reload_and_clean_stop() {
    let dir = tempfile::tempdir().unwrap();
    // Nobody listens on this port: the board has no broker yet.
    let port = free_port();
    let cfg = config(dir.path(), port, "");
    let sock = dir.path().join("notify");
    let notify = Notify::bind(&sock);
    let mut d = DaemonProc::spawn(
        &cfg,
        &dir.path().join("daemon.log"),
        &[
            ("NOTIFY_SOCKET", sock.to_str().unwrap()),
            ("WATCHDOG_USEC", "600000"),
        ],
    );
    assert!(
        wait_until(T, || notify.count("READY=1") == 1),
        "READY=1 without a broker: {:?}\n{}",
        notify.all(),
        d.log()
    );
    let ready = notify
        .all()
        .into_iter()
        .find(|m| m.contains("READY=1"))
        .unwrap();
    assert!(ready.contains("STATUS=idle; mqtt not connected"), "{ready}");
    // Pings every WATCHDOG_USEC / 2 while the loop is healthy.
    assert!(
        wait_until(T, || notify.count("WATCHDOG=1") >= 3),
        "{:?}",
        notify.all()
    );

    // SIGHUP with a broken file: refused, the old configuration stays.
    std::fs::write(&cfg, "[mqtt]\nhots = \"x\"\n").unwrap();
    broker::signal(d.child.id(), libc::SIGHUP);
    assert!(
        wait_until(T, || d.log().contains("reload failed")),
        "{}",
        d.log()
    );
    assert!(d.log().contains("hots"), "names the bad key: {}", d.log());
    assert!(wait_until(T, || notify.count("READY=1") == 2));
    assert!(notify.count("RELOADING=1") >= 1);
    assert!(d.child.try_wait().unwrap().is_none(), "still running");

    // SIGHUP with a valid file: applied.
    config(dir.path(), port, "[commands]\nqueue_depth = 5\n");
    broker::signal(d.child.id(), libc::SIGHUP);
    assert!(
        wait_until(T, || d.log().contains("configuration reloaded")),
        "{}",
        d.log()
    );

    let st = d.stop_with(libc::SIGTERM, T).expect("exits on SIGTERM");
    assert!(st.success(), "{st:?}\n{}", d.log());
    assert!(
        wait_until(Duration::from_secs(2), || notify.count("STOPPING=1") == 1),
        "{:?}",
        notify.all()
    );
}

#[test]
fn invalid_configuration_fails_before_ready_naming_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        free_port(),
        "[schedule]\nevery = \"5 parsecs\"\non_boot = \"tiny\"\n",
    );
    let sock = dir.path().join("notify");
    let notify = Notify::bind(&sock);
    let mut d = DaemonProc::spawn(
        &cfg,
        &dir.path().join("daemon.log"),
        &[("NOTIFY_SOCKET", sock.to_str().unwrap())],
    );
    let st = d.stop_with(0, T).expect("exits by itself");
    assert!(!st.success());
    let log = d.log();
    assert!(
        log.contains("schedule.every") && log.contains("5 parsecs"),
        "{log}"
    );
    assert_eq!(notify.count("READY=1"), 0, "{:?}", notify.all());

    std::fs::write(&cfg, "[mqtt]\nportt = 1\n").unwrap();
    let mut d = DaemonProc::spawn(&cfg, &dir.path().join("daemon2.log"), &[]);
    let st = d.stop_with(0, T).expect("exits by itself");
    assert!(!st.success());
    let log = d.log();
    assert!(
        log.contains("mqtt.portt") && log.contains(&cfg.display().to_string()),
        "{log}"
    );
}

#[test]
fn a_missing_model_manifest_fails_before_ready() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), free_port(), "");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        &common::fixture_models().display().to_string(),
        "/nonexistent/models",
    );
    std::fs::write(&cfg, text).unwrap();
    let mut d = DaemonProc::spawn(&cfg, &dir.path().join("daemon.log"), &[]);
    let st = d.stop_with(0, T).expect("exits by itself");
    assert!(!st.success());
    assert!(d.log().contains("/nonexistent/models"), "{}", d.log());
}
