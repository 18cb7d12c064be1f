//! The chaos suite: the real daemon binary, real mosquitto, the real ONNX Runtime
//! library and the committed tiny model, under the faults a board meets unattended:
//! power cuts (kill -9 at random instants, torn last lines), a broker killed with
//! kill -9 (persistence off and on), network partitions through a TCP proxy of this
//! file (drop, stall, half-open), a full disk (a size-limited tmpfs), and a soak of
//! back-to-back sweeps under a steady command stream.
//!
//! Sizes come from environment variables so `make test` runs a bounded form and
//! `make chaos` the full one (see the Makefile): `EDGEBENCH_CHAOS_POWER_CUTS`,
//! `EDGEBENCH_CHAOS_BROKER_KILLS`, `EDGEBENCH_CHAOS_SOAK_SWEEPS`. Each test prints
//! one `CHAOS ...` line with its figures (run with `--no-capture` to see them).
//!
//! Consumers de-duplicate on `run_id` (at least once): duplicates are counted and
//! reported, never hidden in a set; losses fail the test.

#[path = "common/broker.rs"]
mod broker;
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use broker::{free_port, publish, wait_until, DaemonProc, Sub};
use serde_json::Value;

const P: &str = "edgebench/v1/board-1";
const T: Duration = Duration::from_secs(60);

fn count_from_env(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small xorshift generator, seeded from the clock; the seed is printed.
struct Rng(u64);

impl Rng {
    fn new(what: &str) -> Rng {
        let seed = std::env::var("EDGEBENCH_CHAOS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("{what}: seed {seed} (EDGEBENCH_CHAOS_SEED)");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// The daemon's configuration: tiny protocol, the fixture model, one sweep `loop`
/// of `configs` configurations (about 0.05 to 0.1 s each).
fn config(dir: &Path, name: &str, port: u16, configs: usize, extra: &str) -> PathBuf {
    let batches: Vec<String> = (1..=configs).map(|b| b.to_string()).collect();
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!(
            r#"
[device]
id = "board-1"
board = "chaos-board"
[onnxruntime]
library = "{lib}"
[models]
dir = "{models}"
[store]
dir = "{store}"
[telemetry]
enabled = false
[mqtt]
host = "127.0.0.1"
port = {port}
telemetry_interval_s = 0.0
backoff_min_s = 0.2
backoff_max_s = 2.0
keepalive_s = 10
[protocol]
warmup_runs = 1
warmup_s = 0.0
min_runs = 3
min_s = 0.02
max_s = 0.5
cooldown_max_s = 0.0
[sweeps.loop]
models = ["tiny_cnn"]
batches = [{batches}]
eps = ["cpu"]
threads = [1]
precisions = ["fp32"]
{extra}
"#,
            lib = common::ort_lib().display(),
            models = common::fixture_models().display(),
            store = dir.join("store").display(),
            batches = batches.join(", "),
        ),
    )
    .unwrap();
    p
}

/// Complete lines of the store's segments (a torn last line has no newline).
fn stored_lines(store: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(store) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        let mut rest = text.as_str();
        while let Some(i) = rest.find('\n') {
            out.push(rest[..i].to_string());
            rest = &rest[i + 1..];
        }
    }
    out
}

/// Stored result lines, by run id.
fn stored_results(store: &Path) -> BTreeMap<String, String> {
    stored_lines(store)
        .into_iter()
        .filter_map(|l| {
            let v: Value = serde_json::from_str(&l).ok()?;
            let id = v["run_id"].as_str()?.to_string();
            (v["record"] == "result").then_some((id, l))
        })
        .collect()
}

/// Every result payload delivered to `sub`, in arrival order.
fn delivered(sub: &Sub) -> Vec<String> {
    sub.on("/result").into_iter().map(|m| m.payload).collect()
}

fn run_id(payload: &str) -> String {
    serde_json::from_str::<Value>(payload)
        .ok()
        .and_then(|v| v["run_id"].as_str().map(str::to_string))
        .unwrap_or_else(|| format!("<not JSON: {payload}>"))
}

/// Losses, duplicates and strangers of `delivered` against `stored`.
struct Tally {
    stored: usize,
    delivered: usize,
    unique: usize,
    duplicates: usize,
    lost: Vec<String>,
    not_stored: Vec<String>,
}

fn tally(stored: &BTreeMap<String, String>, delivered: &[String]) -> Tally {
    let stored_payloads: BTreeSet<&str> = stored.values().map(String::as_str).collect();
    let ids: Vec<String> = delivered.iter().map(|p| run_id(p)).collect();
    let unique: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    Tally {
        stored: stored.len(),
        delivered: delivered.len(),
        unique: unique.len(),
        duplicates: delivered.len() - unique.len(),
        lost: stored
            .keys()
            .filter(|k| !unique.contains(k.as_str()))
            .cloned()
            .collect(),
        not_stored: delivered
            .iter()
            .filter(|p| !stored_payloads.contains(p.as_str()))
            .cloned()
            .collect(),
    }
}

/// Waits until every stored result was delivered.
fn wait_drained(store: &Path, sub: &Sub, timeout: Duration) -> bool {
    wait_until(timeout, || {
        tally(&stored_results(store), &delivered(sub))
            .lost
            .is_empty()
    })
}

/// A mosquitto of this suite, which can be killed with SIGKILL and restarted on its
/// port, with persistence on or off.
struct Mosq {
    port: u16,
    dir: tempfile::TempDir,
    persistence: bool,
    child: Option<Child>,
}

impl Mosq {
    fn start(persistence: bool) -> Mosq {
        let mut m = Mosq {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            persistence,
            child: None,
        };
        m.restart();
        m
    }

    fn restart(&mut self) {
        assert!(self.child.is_none());
        let conf = self.dir.path().join("mosquitto.conf");
        // SAFETY: geteuid has no preconditions.
        let user = if unsafe { libc::geteuid() } == 0 {
            "user root\n"
        } else {
            ""
        };
        std::fs::write(
            &conf,
            format!(
                "{user}listener {} 127.0.0.1\nallow_anonymous true\npersistence {}\n\
                 persistence_location {}/\nautosave_interval 1\nlog_dest file {}/mosquitto.log\n\
                 log_type error\nlog_type warning\nlog_type notice\nmax_queued_messages 1000000\n",
                self.port,
                self.persistence,
                self.dir.path().display(),
                self.dir.path().display(),
            ),
        )
        .unwrap();
        let ok = wait_until(Duration::from_secs(15), || {
            let mut c = Command::new("mosquitto")
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .or_else(|_| {
                    Command::new("/usr/sbin/mosquitto")
                        .arg("-c")
                        .arg(&conf)
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                })
                .expect("start mosquitto");
            let up = wait_until(Duration::from_secs(3), || {
                matches!(c.try_wait(), Ok(Some(_)))
                    || TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            });
            if up && matches!(c.try_wait(), Ok(None)) {
                self.child = Some(c);
                true
            } else {
                let _ = c.kill();
                let _ = c.wait();
                false
            }
        });
        assert!(ok, "mosquitto did not start on port {}", self.port);
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Mosq {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Waits until `sub` receives a fresh probe (it is subscribed right now).
fn probe(sub: &Sub, port: u16, n: &mut u32) -> bool {
    *n += 1;
    let tag = format!("chaos-probe-{}-{n}", std::process::id());
    wait_until(Duration::from_secs(20), || {
        let _ = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
            .args(["-t", "test/probe", "-m", &tag])
            .stderr(Stdio::null())
            .status();
        wait_until(Duration::from_millis(300), || {
            sub.all().iter().any(|m| m.payload == tag)
        })
    })
}

// ---------------------------------------------------------------------------------
// A TCP proxy with faults: drop (close every connection and refuse new ones),
// stall (stop forwarding on every connection, old and new), half-open (connections
// open now never forward again; new ones work).

const PASS: u8 = 0;
const STALL: u8 = 1;
const REFUSE: u8 = 2;

struct ProxyState {
    mode: AtomicU8,
    /// Connections numbered below this are black holes.
    blackhole_below: AtomicU64,
    next: AtomicU64,
    conns: Mutex<Vec<(TcpStream, TcpStream)>>,
    stop: AtomicBool,
}

struct Proxy {
    port: u16,
    st: Arc<ProxyState>,
}

impl Proxy {
    fn start(upstream: u16) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        l.set_nonblocking(true).unwrap();
        let st = Arc::new(ProxyState {
            mode: AtomicU8::new(PASS),
            blackhole_below: AtomicU64::new(0),
            next: AtomicU64::new(0),
            conns: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let s = st.clone();
        std::thread::spawn(move || {
            while !s.stop.load(Ordering::Relaxed) {
                let (down, _) = match l.accept() {
                    Ok(c) => c,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                };
                if s.mode.load(Ordering::Relaxed) == REFUSE {
                    let _ = down.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(up) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    let _ = down.shutdown(Shutdown::Both);
                    continue;
                };
                let _ = down.set_nonblocking(false);
                let n = s.next.fetch_add(1, Ordering::Relaxed);
                s.conns
                    .lock()
                    .unwrap()
                    .push((down.try_clone().unwrap(), up.try_clone().unwrap()));
                for (from, to) in [
                    (down.try_clone().unwrap(), up.try_clone().unwrap()),
                    (up, down),
                ] {
                    let s = s.clone();
                    std::thread::spawn(move || pump(from, to, n, &s));
                }
            }
        });
        Proxy { port, st }
    }

    fn set(&self, mode: u8) {
        self.st.mode.store(mode, Ordering::Relaxed);
    }

    /// Closes every connection (both sides see it at once).
    fn drop_all(&self) {
        for (a, b) in self.st.conns.lock().unwrap().drain(..) {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
    }

    /// Connections open now never forward another byte, and are not closed.
    fn half_open(&self) {
        let n = self.st.next.load(Ordering::Relaxed);
        self.st.blackhole_below.store(n, Ordering::Relaxed);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.st.stop.store(true, Ordering::Relaxed);
        self.drop_all();
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, n: u64, s: &ProxyState) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(20)));
    let mut buf = [0u8; 16 * 1024];
    loop {
        if s.stop.load(Ordering::Relaxed) {
            return;
        }
        if s.mode.load(Ordering::Relaxed) == STALL || n < s.blackhole_below.load(Ordering::Relaxed)
        {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        match from.read(&mut buf) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(k) => {
                if to.write_all(&buf[..k]).is_err() {
                    return;
                }
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => {
                let _ = to.shutdown(Shutdown::Both);
                return;
            }
        }
    }
}

fn log_count(d: &DaemonProc, needle: &str) -> usize {
    d.log().matches(needle).count()
}

// ---------------------------------------------------------------------------------

#[test]
fn power_cut_loop_delivers_every_stored_result_and_nothing_else() {
    let n = count_from_env("EDGEBENCH_CHAOS_POWER_CUTS", 4);
    let mut rng = Rng::new("power-cut loop");
    let broker = Mosq::start(true);
    let sub = Sub::start(broker.port);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let boot = config(
        dir.path(),
        "boot.toml",
        broker.port,
        8,
        "[schedule]\non_boot = \"loop\"\n",
    );
    let log = dir.path().join("daemon.log");
    let mut ever: BTreeMap<String, String> = BTreeMap::new();
    let mut torn = 0;
    // Cuts that stored nothing new widen the next window (a loaded machine may not
    // finish a configuration within the first 1.5 s), so the loop always measures.
    let mut idle_cuts = 0u32;
    for i in 0..n {
        let mut d = DaemonProc::spawn(&boot, &log, &[]);
        // A random instant: during start-up, recovery, the sweep, an append.
        let window = 1400u64 << idle_cuts.min(3);
        std::thread::sleep(Duration::from_millis(100 + rng.below(window)));
        d.kill9();
        let before = ever.len();
        ever.extend(stored_results(&store));
        idle_cuts = if ever.len() == before {
            idle_cuts + 1
        } else {
            0
        };
        // Every third cut also tears the last line, as a power cut in the middle of
        // a write does (kill -9 cannot cut a write(2) in half).
        if i % 3 == 1 {
            let mut segs: Vec<PathBuf> = std::fs::read_dir(&store)
                .unwrap()
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
                .collect();
            segs.sort();
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(segs.last().unwrap())
                .unwrap();
            write!(
                f,
                r#"{{"record":"result","run_id":"torn-{i}","status":"ok","latency_ms_p50":1."#
            )
            .unwrap();
            torn += 1;
        }
    }
    // Restart without a boot sweep and drain.
    let plain = config(dir.path(), "plain.toml", broker.port, 8, "");
    let d = DaemonProc::spawn(&plain, &log, &[]);
    let drained = wait_drained(&store, &sub, T);
    let stored = stored_results(&store);
    let got = delivered(&sub);
    let t = tally(&stored, &got);
    let cut = log_count(&d, "cutting a torn last line");
    let interrupted = stored
        .values()
        .filter(|l| l.contains("\"interrupted\""))
        .count();
    eprintln!(
        "CHAOS power-cut: {n} kill -9 cuts, {torn} torn lines injected, {cut} cut at restart; \
         {} results stored ({interrupted} interrupted records), {} delivered, {} unique, \
         {} duplicates, {} lost, {} delivered but never stored",
        t.stored,
        t.delivered,
        t.unique,
        t.duplicates,
        t.lost.len(),
        t.not_stored.len()
    );
    assert!(drained, "not drained: lost {:?}\n{}", t.lost, d.log());
    assert!(t.lost.is_empty(), "lost: {:?}", t.lost);
    assert!(
        t.not_stored.is_empty(),
        "delivered, never stored: {:?}",
        t.not_stored
    );
    assert!(
        got.iter().all(|p| !p.contains("torn-")),
        "a torn line was delivered"
    );
    assert_eq!(cut, torn, "every torn line detected and cut:\n{}", d.log());
    // Nothing durable ever disappeared from the store.
    let missing: Vec<&String> = ever.keys().filter(|k| !stored.contains_key(*k)).collect();
    assert!(missing.is_empty(), "stored once, gone later: {missing:?}");
    assert!(t.stored > 0, "the loop stored nothing:\n{}", d.log());
}

fn broker_kill_loop(persistence: bool) {
    let n = count_from_env("EDGEBENCH_CHAOS_BROKER_KILLS", 3);
    let mut rng = Rng::new("broker kill -9 loop");
    let mut broker = Mosq::start(persistence);
    // The board reaches the broker through a proxy that stays closed after each
    // broker restart until the consumer is subscribed again: what is measured is the
    // daemon's delivery, not a race between two clients reconnecting.
    let proxy = Proxy::start(broker.port);
    let sub = Sub::persistent(broker.port, &format!("chaos-consumer-{persistence}"));
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let cfg = config(
        dir.path(),
        "edgebench.toml",
        proxy.port,
        24,
        "[commands]\nqueue_depth = 4\n",
    );
    let d = DaemonProc::spawn(&cfg, &dir.path().join("daemon.log"), &[]);
    assert!(
        wait_until(T, || log_count(&d, "mqtt: connected to") >= 1),
        "{}",
        d.log()
    );
    let mut probes = 0;
    for i in 0..n {
        publish(
            broker.port,
            &format!("{P}/cmd/sweep-start"),
            &format!(r#"{{"request_id":"k{persistence}-{i}","sweep":"loop"}}"#),
            &[],
        );
        std::thread::sleep(Duration::from_millis(300 + rng.below(900)));
        let connects = log_count(&d, "mqtt: connected to");
        proxy.set(REFUSE);
        broker.kill9();
        proxy.drop_all();
        std::thread::sleep(Duration::from_millis(100 + rng.below(700)));
        broker.restart();
        assert!(probe(&sub, broker.port, &mut probes), "consumer back");
        proxy.set(PASS);
        // The next command must find the daemon subscribed again.
        assert!(
            wait_until(T, || log_count(&d, "mqtt: connected to") > connects),
            "{}",
            d.log()
        );
    }
    // Let the queued sweeps finish, then everything must arrive.
    let idle = wait_until(Duration::from_secs(120), || {
        let s = sub.on("/sweep/state");
        s.last().is_some_and(|m| {
            let v = m.json();
            v["state"] != "running" && v["queued"] == 0
        })
    });
    let drained = wait_drained(&store, &sub, T);
    let t = tally(&stored_results(&store), &delivered(&sub));
    eprintln!(
        "CHAOS broker kill -9 (persistence {}): {n} kills; {} results stored, {} delivered, \
         {} unique, {} duplicates, {} lost, {} delivered but never stored",
        if persistence { "on" } else { "off" },
        t.stored,
        t.delivered,
        t.unique,
        t.duplicates,
        t.lost.len(),
        t.not_stored.len()
    );
    assert!(idle, "sweeps never finished:\n{}", d.log());
    assert!(
        drained && t.lost.is_empty(),
        "lost {:?}\n{}",
        t.lost,
        d.log()
    );
    assert!(t.not_stored.is_empty(), "{:?}", t.not_stored);
    assert!(t.stored > 0);
}

#[test]
fn broker_kill_9_loses_nothing_without_persistence() {
    broker_kill_loop(false);
}

#[test]
fn broker_kill_9_loses_nothing_with_persistence() {
    broker_kill_loop(true);
}

#[test]
fn network_partitions_are_noticed_within_the_keepalive_and_lose_nothing() {
    let broker = Mosq::start(false);
    let proxy = Proxy::start(broker.port);
    let sub = Sub::start(broker.port);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let cfg = config(
        dir.path(),
        "edgebench.toml",
        proxy.port,
        30,
        "[commands]\nqueue_depth = 4\n",
    );
    // Slower configurations, so the sweeps outlast the three partitions.
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("min_s = 0.02", "min_s = 0.2");
    std::fs::write(&cfg, text).unwrap();
    let d = DaemonProc::spawn(&cfg, &dir.path().join("daemon.log"), &[]);
    assert!(wait_until(T, || log_count(&d, "mqtt: connected to") >= 1));
    for i in 0..4 {
        publish(
            broker.port,
            &format!("{P}/cmd/sweep-start"),
            &format!(r#"{{"request_id":"p{i}","sweep":"loop"}}"#),
            &[],
        );
    }
    assert!(wait_until(T, || !delivered(&sub).is_empty()));
    let keepalive = 10.0;
    let mut figures = Vec::new();
    for fault in ["drop", "stall", "half-open"] {
        let errors = log_count(&d, "retrying in");
        let connects = log_count(&d, "mqtt: connected to");
        let t0 = Instant::now();
        match fault {
            "drop" => {
                proxy.set(REFUSE);
                proxy.drop_all();
            }
            "stall" => proxy.set(STALL),
            _ => proxy.half_open(),
        }
        let noticed = wait_until(Duration::from_secs(30), || {
            log_count(&d, "retrying in") > errors
        });
        let detect = t0.elapsed().as_secs_f64();
        assert!(noticed, "{fault}: never noticed:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(500));
        proxy.set(PASS);
        let back = wait_until(Duration::from_secs(30), || {
            log_count(&d, "mqtt: connected to") > connects
        });
        let reconnect = t0.elapsed().as_secs_f64();
        assert!(back, "{fault}: never reconnected:\n{}", d.log());
        figures.push(format!(
            "{fault}: noticed after {detect:.1} s, connected again after {reconnect:.1} s"
        ));
        assert!(
            detect <= keepalive + 1.0,
            "{fault}: noticed after {detect:.1} s, keepalive {keepalive} s"
        );
    }
    let idle = wait_until(Duration::from_secs(120), || {
        sub.on("/sweep/state").last().is_some_and(|m| {
            let v = m.json();
            v["state"] != "running" && v["queued"] == 0
        })
    });
    let drained = wait_drained(&store, &sub, T);
    let t = tally(&stored_results(&store), &delivered(&sub));
    eprintln!(
        "CHAOS partition (keepalive {keepalive} s): {}; {} results stored, {} delivered, \
         {} duplicates, {} lost",
        figures.join("; "),
        t.stored,
        t.delivered,
        t.duplicates,
        t.lost.len()
    );
    assert!(idle, "{}", d.log());
    assert!(drained && t.lost.is_empty(), "lost {:?}", t.lost);
    assert!(t.not_stored.is_empty());
}

/// A size-limited tmpfs mounted for the test (needs root: `make test` runs as root
/// in CI), unmounted on drop.
struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    fn mount(size: &str) -> SmallFs {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "the disk-full test mounts a size-limited tmpfs and needs root"
        );
        let dir = tempfile::tempdir().unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(st.success(), "mount -t tmpfs failed");
        SmallFs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the filesystem up to the last byte with `filler`.
    fn fill(&self) {
        let mut f = std::fs::File::create(self.path().join("filler")).unwrap();
        let chunk = vec![0u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        let one = [0u8; 1];
        while f.write_all(&one).is_ok() {}
    }

    fn free(&self) {
        std::fs::remove_file(self.path().join("filler")).unwrap();
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn status(sub: &Sub, port: u16, rid: &str) -> Value {
    publish(
        port,
        &format!("{P}/cmd/status-get"),
        &format!(r#"{{"request_id":"{rid}"}}"#),
        &[],
    );
    sub.reply(rid, T)
        .unwrap_or_else(|| panic!("no status reply {rid}"))
}

#[test]
fn a_full_disk_keeps_the_daemon_serving_alarms_and_resumes_when_space_returns() {
    let fs = SmallFs::mount("1m");
    let mut broker = Mosq::start(false);
    broker.kill9();
    let work = tempfile::tempdir().unwrap();
    // The store lives on the small filesystem; everything else does not.
    let extra = format!(
        "[schedule]\non_boot = \"loop\"\n[store]\ndir = \"{}\"\nmin_free_bytes = 16384\n",
        fs.path().join("store").display()
    );
    let cfg_text = std::fs::read_to_string(config(work.path(), "x.toml", broker.port, 12, ""))
        .unwrap()
        .replace(
            &format!(
                "[store]\ndir = \"{}\"\n",
                work.path().join("store").display()
            ),
            "",
        );
    let boot = work.path().join("boot.toml");
    std::fs::write(&boot, format!("{cfg_text}{extra}")).unwrap();
    let store = fs.path().join("store");
    // 1. No broker: results pile up in the store; the daemon dies mid-sweep.
    let mut d = DaemonProc::spawn(&boot, &work.path().join("daemon.log"), &[]);
    assert!(
        wait_until(T, || stored_results(&store).len() >= 3),
        "{}",
        d.log()
    );
    d.kill9();
    let before = stored_results(&store);
    // 2. The disk fills up to the last byte; the daemon starts anyway and drains.
    fs.fill();
    broker.restart();
    let sub = Sub::start(broker.port);
    let plain = work.path().join("plain.toml");
    std::fs::write(
        &plain,
        format!(
            "{cfg_text}{}",
            extra.replace("on_boot = \"loop\"", "on_boot = \"\"")
        ),
    )
    .unwrap();
    let d = DaemonProc::spawn(&plain, &work.path().join("daemon2.log"), &[]);
    assert!(
        sub.wait_for("/status", T, |m| m.payload == "online" && !m.retained)
            .is_some(),
        "the daemon did not start on a full disk:\n{}",
        d.log()
    );
    assert!(
        wait_drained(&store, &sub, T),
        "stored results not drained from a full disk:\n{}",
        d.log()
    );
    let st = status(&sub, broker.port, "full-1");
    assert_eq!(st["ok"], true);
    let alarm = st["store_alarm"].as_str().unwrap().to_string();
    assert!(
        alarm == "low_space" || alarm == "full",
        "alarm on a full disk: {st}"
    );
    // A sweep on the full disk: refused records, the daemon keeps serving.
    publish(
        broker.port,
        &format!("{P}/cmd/sweep-start"),
        r#"{"request_id":"full-sweep","sweep":"loop"}"#,
        &[],
    );
    let sid = sub.reply("full-sweep", T).unwrap()["sweep_id"]
        .as_str()
        .unwrap()
        .to_string();
    let failed = sub
        .wait_for("/sweep/state", T, |m| {
            let v = m.json();
            v["sweep_id"] == sid.as_str() && v["state"] == "failed"
        })
        .map(|m| m.json())
        .unwrap_or_else(|| panic!("sweep on a full disk:\n{}", d.log()));
    assert!(
        failed["error"].as_str().unwrap().contains("full"),
        "{failed}"
    );
    let st = status(&sub, broker.port, "full-2");
    assert_eq!(st["store_alarm"], "full", "{st}");
    // 3. Space returns: the alarm clears, sweeps store and deliver again.
    fs.free();
    let st = status(&sub, broker.port, "full-3");
    assert_eq!(st["store_alarm"], "none", "{st}");
    publish(
        broker.port,
        &format!("{P}/cmd/sweep-start"),
        r#"{"request_id":"after","sweep":"loop"}"#,
        &[],
    );
    let sid2 = sub.reply("after", T).unwrap()["sweep_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(sub
        .wait_for("/sweep/state", T, |m| {
            let v = m.json();
            v["sweep_id"] == sid2.as_str() && v["state"] == "done"
        })
        .is_some());
    assert!(wait_drained(&store, &sub, T));
    let t = tally(&stored_results(&store), &delivered(&sub));
    eprintln!(
        "CHAOS disk full (tmpfs 1 MiB): {} results stored before the disk filled, all delivered \
         from the full disk; sweep on the full disk failed with `{}`; alarm `{alarm}` then `full`, \
         `none` after freeing; {} stored in all, {} delivered, {} lost",
        before.len(),
        failed["error"].as_str().unwrap_or(""),
        t.stored,
        t.delivered,
        t.lost.len()
    );
    assert!(t.lost.is_empty());
    assert!(t.not_stored.is_empty());
    // The configuration the kill cut short is recorded once space returned.
    let interrupted = stored_results(&store)
        .values()
        .filter(|l| l.contains("\"interrupted\""))
        .count();
    assert_eq!(interrupted, 1, "{}", d.log());
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn soak_back_to_back_sweeps_keep_rss_and_fds_flat() {
    let n = count_from_env("EDGEBENCH_CHAOS_SOAK_SWEEPS", 30);
    let broker = Mosq::start(false);
    let sub = Sub::start(broker.port);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "edgebench.toml",
        broker.port,
        1,
        "[commands]\nqueue_depth = 4\n",
    );
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("min_runs = 3", "min_runs = 1")
        .replace("min_s = 0.02", "min_s = 0.0")
        .replace("max_s = 0.5", "max_s = 0.05")
        .replace("warmup_runs = 1", "warmup_runs = 0");
    std::fs::write(&cfg, text).unwrap();
    let d = DaemonProc::spawn(&cfg, &dir.path().join("daemon.log"), &[]);
    let pid = d.child.id();
    assert!(sub
        .wait_for("/status", T, |m| m.payload == "online")
        .is_some());
    // A steady command stream beside the sweeps: status-get every 50 ms.
    let stop = Arc::new(AtomicBool::new(false));
    let port = broker.port;
    let s2 = stop.clone();
    let stream = std::thread::spawn(move || {
        let mut k = 0u64;
        while !s2.load(Ordering::Relaxed) {
            let _ = Command::new("mosquitto_pub")
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
                .args(["-t", &format!("{P}/cmd/status-get")])
                .args(["-m", &format!(r#"{{"request_id":"soak-st-{k}"}}"#)])
                .stderr(Stdio::null())
                .status();
            k += 1;
            std::thread::sleep(Duration::from_millis(50));
        }
        k
    });
    let run = |i: usize| {
        let rid = format!("soak-{i}");
        publish(
            port,
            &format!("{P}/cmd/sweep-start"),
            &format!(r#"{{"request_id":"{rid}","sweep":"loop"}}"#),
            &[],
        );
        let sid = sub.reply(&rid, T).expect("reply")["sweep_id"]
            .as_str()
            .expect("started")
            .to_string();
        assert!(
            wait_until(T, || sub.on("/sweep/state").iter().rev().take(8).any(|m| {
                let v = m.json();
                v["sweep_id"] == sid.as_str() && v["state"] == "done"
            })),
            "sweep {i} did not finish"
        );
    };
    // Warm-up: the first sweeps map ONNX Runtime and fill the allocator's pools.
    let warm = 5.min(n);
    for i in 0..warm {
        run(i);
    }
    let (rss0, fds0) = (rss_kb(pid), fds(pid));
    let t0 = Instant::now();
    for i in warm..n {
        run(i);
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let (rss1, fds1) = (rss_kb(pid), fds(pid));
    stop.store(true, Ordering::Relaxed);
    let commands = stream.join().unwrap();
    let store = dir.path().join("store");
    assert!(wait_drained(&store, &sub, T));
    let t = tally(&stored_results(&store), &delivered(&sub));
    let replies = sub.on("/reply").len();
    eprintln!(
        "CHAOS soak: {n} sweeps back to back ({} after warm-up in {elapsed:.0} s), {commands} \
         status-get alongside, {replies} replies; RSS {rss0} kB -> {rss1} kB, open fds {fds0} -> \
         {fds1}; {} results, {} lost",
        n - warm,
        t.stored,
        t.lost.len()
    );
    assert!(t.lost.is_empty());
    assert!(
        fds1 <= fds0 + 2,
        "open fds grew: {fds0} -> {fds1} ({:?})",
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .collect::<Vec<_>>()
    );
    // Flat: at most 8 MiB over the warmed-up size, whatever the count.
    assert!(rss1 <= rss0 + 8 * 1024, "RSS grew: {rss0} -> {rss1} kB");
}
