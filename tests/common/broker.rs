//! Real MQTT parts for the daemon tests: a Debian `mosquitto` broker on 127.0.0.1 at
//! a free port (started and killed by the test), `mosquitto_sub` / `mosquitto_pub`
//! as the clients a user would use, and the daemon binary as a child process.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `mosquitto`, from PATH or Debian's /usr/sbin.
fn mosquitto_bin() -> PathBuf {
    for p in ["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"] {
        if Path::new(p).is_file() {
            return PathBuf::from(p);
        }
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("mosquitto"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("mosquitto not found: `apt-get install mosquitto mosquitto-clients` (make test does this)")
    })
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// A mosquitto broker of this test.
pub struct Broker {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    /// Extra configuration lines (password file, TLS listener...).
    extra: String,
}

impl Broker {
    /// Anonymous broker with persistence (sessions survive a restart).
    pub fn start() -> Broker {
        Broker::start_with("allow_anonymous true\n")
    }

    /// Broker accepting only `user` / `password` (a `mosquitto_passwd` file).
    pub fn start_with_password(user: &str, password: &str) -> Broker {
        let dir = tempfile::tempdir().expect("tempdir");
        let pw = dir.path().join("passwd");
        let st = Command::new("mosquitto_passwd")
            .args(["-b", "-c"])
            .arg(&pw)
            .args([user, password])
            .status()
            .expect("run mosquitto_passwd");
        assert!(st.success(), "mosquitto_passwd failed");
        let extra = format!("allow_anonymous false\npassword_file {}\n", pw.display());
        Broker::start_in(dir, &extra)
    }

    /// Broker with extra config lines for its listener.
    pub fn start_with(extra: &str) -> Broker {
        Broker::start_in(tempfile::tempdir().expect("tempdir"), extra)
    }

    fn start_in(dir: tempfile::TempDir, extra: &str) -> Broker {
        let mut b = Broker {
            port: 0,
            dir,
            child: None,
            extra: extra.to_string(),
        };
        for _ in 0..5 {
            b.port = free_port();
            if b.spawn() {
                return b;
            }
        }
        panic!("mosquitto did not start; see {}", b.log_path().display());
    }

    /// A broker that is not running yet (reserved port), for tests that start the
    /// daemon first.
    pub fn not_started(extra: &str) -> Broker {
        Broker {
            port: free_port(),
            dir: tempfile::tempdir().expect("tempdir"),
            child: None,
            extra: extra.to_string(),
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("mosquitto.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn spawn(&mut self) -> bool {
        let conf = self.dir.path().join("mosquitto.conf");
        // Started as root, mosquitto drops to its own user, which could then not
        // write its persistence file (sessions kept across a restart) in our temp dir.
        // SAFETY: geteuid has no preconditions.
        let user = if unsafe { libc::geteuid() } == 0 {
            "user root\n"
        } else {
            ""
        };
        std::fs::write(
            &conf,
            format!(
                "{user}listener {port} 127.0.0.1\n{extra}persistence true\npersistence_location {dir}/\n\
                 log_dest file {log}\nlog_type all\nmax_queued_messages 100000\n",
                port = self.port,
                extra = self.extra,
                dir = self.dir.path().display(),
                log = self.log_path().display(),
            ),
        )
        .expect("write mosquitto.conf");
        let mut child = Command::new(mosquitto_bin())
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        let up = wait_until(Duration::from_secs(5), || {
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            TcpStream::connect(("127.0.0.1", self.port)).is_ok()
        });
        if !up || matches!(child.try_wait(), Ok(Some(_))) {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        self.child = Some(child);
        true
    }

    /// (Re)starts the broker on the same port.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "broker already running");
        let up = wait_until(Duration::from_secs(10), || self.spawn());
        assert!(up, "mosquitto did not restart on port {}", self.port);
    }

    /// Stops the broker cleanly (SIGTERM: it saves its sessions).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(c.id(), libc::SIGTERM);
            let _ = c.wait();
        }
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: plain kill(2) on a child we started.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// One received message.
#[derive(Debug, Clone)]
pub struct Msg {
    pub retained: bool,
    pub topic: String,
    pub payload: String,
}

impl Msg {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.payload)
            .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {}", self.topic, self.payload))
    }
}

/// A `mosquitto_sub` on `edgebench/#`, collecting every message.
pub struct Sub {
    msgs: Arc<Mutex<Vec<Msg>>>,
    stop: Arc<AtomicBool>,
    child: Arc<Mutex<Option<Child>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sub {
    /// Subscribes and waits until the subscription works.
    pub fn start(port: u16) -> Sub {
        Sub::start_opts(port, None, &[])
    }

    /// A persistent session (`-c -i id`, QoS 1) that reconnects when the broker
    /// restarts: messages published meanwhile are kept by the broker for it.
    pub fn persistent(port: u16, id: &str) -> Sub {
        Sub::start_opts(port, Some(id), &[])
    }

    /// With extra `mosquitto_sub` arguments (credentials...).
    pub fn start_opts(port: u16, persistent_id: Option<&str>, extra: &[&str]) -> Sub {
        let msgs = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let child: Arc<Mutex<Option<Child>>> = Arc::new(Mutex::new(None));
        let mut args: Vec<String> = vec![
            "-h".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
            "-q".into(),
            "1".into(),
            "-V".into(),
            "mqttv5".into(),
            "-t".into(),
            "edgebench/#".into(),
            "-t".into(),
            "test/#".into(),
            "-F".into(),
            "%r %t %p".into(),
        ];
        if let Some(id) = persistent_id {
            args.extend(["-c".into(), "-i".into(), id.into()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let (m, s, c) = (msgs.clone(), stop.clone(), child.clone());
        let reconnect = persistent_id.is_some();
        let thread = std::thread::spawn(move || loop {
            let mut ch = match Command::new("mosquitto_sub")
                .args(&args)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
            {
                Ok(ch) => ch,
                Err(e) => panic!("cannot start mosquitto_sub: {e}"),
            };
            let out = ch.stdout.take().expect("piped stdout");
            *c.lock().unwrap() = Some(ch);
            // Lossy: a payload that is not UTF-8 (a hostile command) must not stop
            // the reader.
            for line in BufReader::new(out).split(b'\n') {
                let Ok(line) = line else { break };
                let line = String::from_utf8_lossy(&line);
                let mut parts = line.splitn(3, ' ');
                let retained = parts.next() == Some("1");
                let topic = parts.next().unwrap_or_default().to_string();
                let payload = parts.next().unwrap_or_default().to_string();
                m.lock().unwrap().push(Msg {
                    retained,
                    topic,
                    payload,
                });
            }
            if let Some(mut ch) = c.lock().unwrap().take() {
                let _ = ch.kill();
                let _ = ch.wait();
            }
            if !reconnect || s.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        });
        let sub = Sub {
            msgs,
            stop,
            child,
            thread: Some(thread),
        };
        // Wait until a probe published after subscribing comes back.
        let probe = format!("probe-{}", std::process::id());
        let ok = wait_until(Duration::from_secs(10), || {
            publish(port, "test/probe", &probe, extra);
            wait_until(Duration::from_millis(300), || {
                sub.all().iter().any(|m| m.payload == probe)
            })
        });
        assert!(ok, "mosquitto_sub did not subscribe on port {port}");
        sub
    }

    pub fn all(&self) -> Vec<Msg> {
        self.msgs.lock().unwrap().clone()
    }

    pub fn on(&self, suffix: &str) -> Vec<Msg> {
        self.all()
            .into_iter()
            .filter(|m| m.topic.ends_with(suffix))
            .collect()
    }

    /// JSON payloads on topics ending with `suffix`.
    pub fn json_on(&self, suffix: &str) -> Vec<serde_json::Value> {
        self.on(suffix).iter().map(Msg::json).collect()
    }

    /// Waits for a message on `suffix` matching `pred`.
    pub fn wait_for(
        &self,
        suffix: &str,
        timeout: Duration,
        pred: impl Fn(&Msg) -> bool,
    ) -> Option<Msg> {
        let mut found = None;
        wait_until(timeout, || {
            found = self.on(suffix).into_iter().find(|m| pred(m));
            found.is_some()
        });
        found
    }

    /// Waits for a JSON reply with this `request_id`.
    pub fn reply(&self, request_id: &str, timeout: Duration) -> Option<serde_json::Value> {
        self.wait_for("/reply", timeout, |m| {
            m.json()["request_id"].as_str() == Some(request_id)
        })
        .map(|m| m.json())
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(mut ch) = self.child.lock().unwrap().take() {
            let _ = ch.kill();
            let _ = ch.wait();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `mosquitto_pub` one message at QoS 1 (extra args: credentials, v5 properties...).
pub fn publish(port: u16, topic: &str, payload: &str, extra: &[&str]) {
    let st = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-q",
            "1",
            "-t",
            topic,
            "-m",
            payload,
        ])
        .args(extra)
        .stderr(Stdio::null())
        .status()
        .expect("run mosquitto_pub");
    assert!(st.success(), "mosquitto_pub to {topic} failed");
}

/// The daemon binary as a child process, stderr to a log file.
pub struct DaemonProc {
    pub child: Child,
    pub log: PathBuf,
}

impl DaemonProc {
    pub fn spawn(config: &Path, log: &Path, env: &[(&str, &str)]) -> DaemonProc {
        let logf = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("daemon log file");
        let mut c = Command::new(env!("CARGO_BIN_EXE_edgebench"));
        // Run where the config is, so nothing is found relative to the repository.
        if let Some(dir) = config.parent() {
            c.current_dir(dir);
        }
        c.arg("daemon")
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(logf)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("JOURNAL_STREAM")
            .env_remove("ORT_DYLIB_PATH");
        for (k, _) in std::env::vars() {
            if k.starts_with("EDGEBENCH__") {
                c.env_remove(k);
            }
        }
        for (k, v) in env {
            c.env(k, v);
        }
        DaemonProc {
            child: c.spawn().expect("start edgebench daemon"),
            log: log.to_path_buf(),
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends `sig` and waits up to `timeout` for the exit.
    pub fn stop_with(&mut self, sig: libc::c_int, timeout: Duration) -> Option<ExitStatus> {
        signal(self.child.id(), sig);
        let mut status = None;
        wait_until(timeout, || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        });
        status
    }
}

impl Drop for DaemonProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
