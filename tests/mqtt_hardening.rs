//! The daemon against a hostile or careless broker and fleet (issue 10): real
//! mosquitto on a free port, `mosquitto_pub` / `mosquitto_sub`, the real binary and
//! ONNX Runtime with the committed tiny models.

#[path = "common/broker.rs"]
mod broker;
mod common;
#[path = "common/tls.rs"]
mod tls;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use broker::{publish, wait_until, Broker, DaemonProc, Sub};
use serde_json::Value;

const DEV: &str = "board-1";
const P: &str = "edgebench/v1/board-1";
const T: Duration = Duration::from_secs(30);

fn write_config(dir: &Path, name: &str, port: u16, extra: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!(
            r#"
[device]
id = "{DEV}"
[onnxruntime]
library = "{lib}"
[models]
dir = "{models}"
[store]
dir = "{store}"
[mqtt]
host = "127.0.0.1"
port = {port}
telemetry_interval_s = 0.0
backoff_min_s = 0.1
backoff_max_s = 1.0
keepalive_s = 5
[protocol]
warmup_runs = 1
warmup_s = 0.0
min_runs = 5
min_s = 0.05
max_s = 2.0
cooldown_max_s = 0.0
[sweeps.tiny]
models = ["tiny_cnn"]
batches = [1, 2, 4]
eps = ["cpu"]
threads = [1]
precisions = ["fp32"]
[sweeps.slow]
models = ["tiny_cnn"]
batches = [1, 2, 3, 4]
eps = ["cpu"]
threads = [1]
precisions = ["fp32"]
min_s = 0.4
[sweeps.wide]
models = ["tiny_cnn"]
batches = [1]
eps = ["cpu", "cuda", "tensorrt", "xnnpack", "openvino", "acl", "armnn", "coreml", "rocm", "qnn", "nnapi", "dnnl"]
threads = [1]
precisions = ["fp32"]
{extra}
"#,
            lib = common::ort_lib().display(),
            models = common::fixture_models().display(),
            store = dir.join("store").display(),
        ),
    )
    .expect("write config");
    p
}

struct Setup {
    dir: tempfile::TempDir,
    broker: Broker,
    sub: Sub,
    daemon: DaemonProc,
}

fn start_daemon(broker: Broker, sub: Sub, extra: &str) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_config(dir.path(), "edgebench.toml", broker.port, extra);
    let daemon = DaemonProc::spawn(&cfg, &dir.path().join("daemon.log"), &[]);
    let online = sub.wait_for("/status", T, |m| m.payload == "online");
    assert!(online.is_some(), "daemon never online:\n{}", daemon.log());
    Setup {
        dir,
        broker,
        sub,
        daemon,
    }
}

fn setup(extra: &str) -> Setup {
    let broker = Broker::start();
    let sub = Sub::start(broker.port);
    start_daemon(broker, sub, extra)
}

fn cmd(port: u16, verb: &str, payload: &str) {
    publish(port, &format!("{P}/cmd/{verb}"), payload, &[]);
}

/// Every reply to `rid` seen so far.
fn replies_to(sub: &Sub, rid: &str) -> Vec<Value> {
    sub.json_on("/reply")
        .into_iter()
        .filter(|r| r["request_id"] == rid)
        .collect()
}

fn nothing_ran(sub: &Sub) -> bool {
    sub.on("/result").is_empty()
        && !sub
            .json_on("/sweep/state")
            .iter()
            .any(|v| v["state"] == "running")
}

#[test]
fn a_kilobyte_command_multiplying_to_millions_is_refused_before_planning() {
    let s = setup("[commands]\nmax_batches = 256\n");
    let batches: Vec<String> = (1..=256).map(|b| b.to_string()).collect();
    let threads: Vec<String> = (0..64).map(|t| t.to_string()).collect();
    let payload = format!(
        r#"{{"request_id":"mul","sweep":"wide","models":["tiny_cnn","@quick","tiny_cnn"],"batches":[{}],"threads":[{}],"precisions":["fp32","fp16","int8","fp32"]}}"#,
        batches.join(","),
        threads.join(",")
    );
    assert!(payload.len() < 1500, "{} bytes", payload.len());
    let t0 = Instant::now();
    cmd(s.broker.port, "sweep-start", &payload);
    let r = s
        .sub
        .reply("mul", T)
        .unwrap_or_else(|| panic!("no reply:\n{}", s.daemon.log()));
    let took = t0.elapsed();
    // 2 models (tiny_cnn once, @quick adds tiny_seg) x 256 x 12 x 64 x 3.
    let want: u64 = 2 * 256 * 12 * 64 * 3;
    assert_eq!(r["code"], "invalid_argument", "{r}");
    assert_eq!(r["configurations"], want, "{r}");
    assert!(
        r["message"].as_str().unwrap().contains(&want.to_string()),
        "{r}"
    );
    eprintln!(
        "{} byte command, {want} configurations: refused after {:.0} ms (publish included)",
        payload.len(),
        took.as_secs_f64() * 1000.0
    );
    // Building 1.2 million configurations would take far longer than this
    // (and gigabytes); the refusal comes from counting.
    assert!(took < Duration::from_secs(3), "{took:?}");
    cmd(s.broker.port, "status-get", r#"{"request_id":"after"}"#);
    assert_eq!(s.sub.reply("after", T).unwrap()["state"], "idle");
    assert!(nothing_ran(&s.sub));
}

#[test]
fn retained_commands_are_never_run() {
    let broker = Broker::start();
    let sub = Sub::start(broker.port);
    // Retained before the daemon exists: the broker must not hand it over.
    publish(
        broker.port,
        &format!("{P}/cmd/sweep-start"),
        r#"{"request_id":"ret-old","sweep":"tiny"}"#,
        &["-r"],
    );
    publish(
        broker.port,
        "edgebench/v1/all/cmd/sweep-start",
        r#"{"request_id":"ret-fleet","sweep":"tiny"}"#,
        &["-r"],
    );
    let mut s = start_daemon(broker, sub, "");
    cmd(s.broker.port, "status-get", r#"{"request_id":"st1"}"#);
    assert!(s.sub.reply("st1", T).is_some(), "subscribed and serving");
    std::thread::sleep(Duration::from_millis(500));
    assert!(replies_to(&s.sub, "ret-old").is_empty());
    assert!(replies_to(&s.sub, "ret-fleet").is_empty());

    // Retained while the daemon is connected: delivered live, flag kept, ignored
    // with one reply.
    publish(
        s.broker.port,
        &format!("{P}/cmd/sweep-start"),
        r#"{"request_id":"ret-live","sweep":"tiny"}"#,
        &["-r"],
    );
    let r = s
        .sub
        .reply("ret-live", T)
        .expect("reply to the retained command");
    assert_eq!(r["code"], "retained", "{r}");
    assert_eq!(r["ok"], false);

    // A reconnect (daemon restart) does not bring any of them back.
    assert!(s
        .daemon
        .stop_with(libc::SIGTERM, Duration::from_secs(15))
        .unwrap()
        .success());
    let n = s.sub.on("/status").len();
    let cfg = s.dir.path().join("edgebench.toml");
    let _d = DaemonProc::spawn(&cfg, &s.dir.path().join("daemon2.log"), &[]);
    assert!(wait_until(T, || s.sub.on("/status")[n..]
        .iter()
        .any(|m| m.payload == "online")));
    cmd(s.broker.port, "status-get", r#"{"request_id":"st2"}"#);
    assert!(s.sub.reply("st2", T).is_some());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(replies_to(&s.sub, "ret-live").len(), 1, "replied once");
    assert!(replies_to(&s.sub, "ret-old").is_empty());
    assert!(nothing_ran(&s.sub), "a retained command ran");
}

#[test]
fn fleet_verbs_and_response_topics_are_limited() {
    let s = setup("");
    let port = s.broker.port;
    publish(
        port,
        "edgebench/v1/all/cmd/sweep-cancel",
        r#"{"request_id":"fl-cancel","all":true}"#,
        &[],
    );
    let r = s.sub.reply("fl-cancel", T).unwrap();
    assert_eq!(r["code"], "not_allowed", "{r}");
    publish(
        port,
        "edgebench/v1/all/cmd/status-get",
        r#"{"request_id":"fl-status"}"#,
        &[],
    );
    assert_eq!(s.sub.reply("fl-status", T).unwrap()["ok"], true);
    // The same verb on the board's own topic is fine.
    cmd(port, "sweep-cancel", r#"{"request_id":"own-cancel"}"#);
    assert_eq!(s.sub.reply("own-cancel", T).unwrap()["code"], "not_running");

    // A response topic in another board's tree is not used; this board's own
    // reply subtree and topics outside the tree are.
    let v5 = |rid: &str, topic: &str| {
        publish(
            port,
            &format!("{P}/cmd/status-get"),
            &format!(r#"{{"request_id":"{rid}"}}"#),
            &["-V", "mqttv5", "-D", "publish", "response-topic", topic],
        )
    };
    v5("rt-other", "edgebench/v1/board-2/reply");
    v5("rt-own", &format!("{P}/reply/app7"));
    v5("rt-app", "test/replies/app7");
    assert!(s.sub.reply("rt-other", T).is_some());
    assert!(s
        .sub
        .wait_for("test/replies/app7", T, |m| m.json()["request_id"]
            == "rt-app")
        .is_some());
    assert!(s
        .sub
        .wait_for("/reply/app7", T, |m| m.json()["request_id"] == "rt-own")
        .is_some());
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        s.sub.on("board-2/reply").is_empty(),
        "published into another board's tree"
    );
    assert!(s.daemon.log().contains("outside the allowed prefixes"));
}

#[test]
fn a_command_flood_is_answered_or_counted_and_the_link_stays_connected() {
    let s = setup("");
    let n = 3000;
    let lines: String = (0..n)
        .map(|i| format!("{{\"request_id\":\"f{i}\"}}\n"))
        .collect();
    let file = s.dir.path().join("flood.txt");
    std::fs::write(&file, lines).unwrap();
    // One connection, 3000 QoS 1 commands as fast as mosquitto takes them.
    let st = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "mosquitto_pub -h 127.0.0.1 -p {} -q 1 -t {P}/cmd/status-get -l < {}",
            s.broker.port,
            file.display()
        ))
        .status()
        .unwrap();
    assert!(st.success());
    std::thread::sleep(Duration::from_secs(2));
    cmd(
        s.broker.port,
        "status-get",
        r#"{"request_id":"after-flood"}"#,
    );
    let after = s
        .sub
        .reply("after-flood", T)
        .unwrap_or_else(|| panic!("no reply after the flood:\n{}", s.daemon.log()));
    assert!(
        after["message"]
            .as_str()
            .unwrap()
            .contains("mqtt connected"),
        "the daemon knows it is connected: {after}"
    );
    let answered: std::collections::HashSet<String> = s
        .sub
        .json_on("/reply")
        .iter()
        .filter_map(|r| r["request_id"].as_str().map(str::to_string))
        .filter(|id| id.starts_with('f'))
        .collect();
    let busy = s
        .sub
        .json_on("/reply")
        .iter()
        .filter(|r| r["code"] == "busy")
        .count();
    let dropped = after["replies_dropped"].as_u64().unwrap();
    let unanswered = n - answered.len();
    eprintln!(
        "flood of {n}: {} answered ({busy} busy), {unanswered} unanswered, link counted {} busy and {dropped} dropped replies",
        answered.len(),
        after["commands_busy"]
    );
    assert!(
        unanswered as u64 <= dropped,
        "{unanswered} commands neither answered nor counted (replies_dropped {dropped}):\n{after}"
    );
    assert!(
        after["commands_busy"].as_u64().unwrap() as usize >= busy,
        "busy replies are counted"
    );
}

#[test]
fn a_refused_result_goes_to_the_dead_letter_file_and_the_queue_moves_on() {
    let dir = tempfile::tempdir().unwrap();
    let acl = dir.path().join("acl");
    std::fs::write(&acl, format!("topic readwrite #\ntopic deny {P}/result\n")).unwrap();
    let broker = Broker::start_with(&format!(
        "allow_anonymous true\nacl_file {}\n",
        acl.display()
    ));
    let sub = Sub::start(broker.port);
    let s = start_daemon(broker, sub, "");
    cmd(
        s.broker.port,
        "sweep-start",
        r#"{"request_id":"dl","sweep":"tiny"}"#,
    );
    let sweep_id = s.sub.reply("dl", T).unwrap()["sweep_id"]
        .as_str()
        .unwrap()
        .to_string();
    // The summary comes after the three refused results: the queue moved on.
    assert!(
        s.sub
            .wait_for("/summary", T, |m| m.json()["sweep_id"] == sweep_id.as_str())
            .is_some(),
        "summary never delivered:\n{}",
        s.daemon.log()
    );
    let refused: Vec<Value> = s
        .sub
        .json_on("/reply")
        .into_iter()
        .filter(|r| r["code"] == "publish_refused")
        .collect();
    assert!(
        wait_until(T, || s
            .sub
            .json_on("/reply")
            .iter()
            .filter(|r| r["code"] == "publish_refused")
            .count()
            == 3),
        "{refused:?}\n{}",
        s.daemon.log()
    );
    let refused: Vec<Value> = s
        .sub
        .json_on("/reply")
        .into_iter()
        .filter(|r| r["code"] == "publish_refused")
        .collect();
    let mut ids: Vec<String> = refused
        .iter()
        .map(|r| r["run_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    let want: Vec<String> = (0..3).map(|i| format!("{sweep_id}-{i:04}")).collect();
    assert_eq!(ids, want, "each refused result named once");
    assert!(refused
        .iter()
        .all(|r| r["reason"] == "NotAuthorized" && r["ok"] == false));
    let dead = std::fs::read_to_string(s.dir.path().join("store/deadletter.jsonl")).unwrap();
    let dead: Vec<Value> = common::json_lines(&dead);
    assert_eq!(dead.len(), 3, "{dead:?}");
    for d in &dead {
        assert_eq!(d["reason"], "NotAuthorized");
        assert_eq!(d["record"]["status"], "ok", "the measured record is kept");
    }
    // Still serving on the same footing, nothing left waiting.
    cmd(s.broker.port, "status-get", r#"{"request_id":"dl-after"}"#);
    let st = s.sub.reply("dl-after", T).unwrap();
    assert_eq!(st["dead_letters"], 3, "{st}");
    let mut i = 0;
    let drained = wait_until(T, || {
        i += 1;
        let rid = format!("dl-poll-{i}");
        cmd(
            s.broker.port,
            "status-get",
            &format!(r#"{{"request_id":"{rid}"}}"#),
        );
        s.sub
            .reply(&rid, Duration::from_secs(5))
            .is_some_and(|st| st["unsent_bytes"] == 0)
    });
    assert!(drained, "records left unsent:\n{}", s.daemon.log());
}

#[test]
fn records_above_the_brokers_maximum_packet_size_are_dead_lettered_not_retried_forever() {
    let broker = Broker::start_with("allow_anonymous true\nmax_packet_size 700\n");
    let sub = Sub::start(broker.port);
    let s = start_daemon(broker, sub, "");
    cmd(
        s.broker.port,
        "sweep-start",
        r#"{"request_id":"big","sweep":"tiny","batches":[1]}"#,
    );
    assert_eq!(s.sub.reply("big", T).unwrap()["code"], "started");
    let refused = s
        .sub
        .wait_for("/reply", T, |m| m.json()["code"] == "publish_refused");
    let refused = refused
        .unwrap_or_else(|| panic!("no publish_refused reply:\n{}", s.daemon.log()))
        .json();
    assert!(
        refused["reason"]
            .as_str()
            .unwrap()
            .starts_with("PacketTooLarge"),
        "{refused}"
    );
    let mut i = 0;
    let drained = wait_until(T, || {
        i += 1;
        let rid = format!("big-poll-{i}");
        cmd(
            s.broker.port,
            "status-get",
            &format!(r#"{{"request_id":"{rid}"}}"#),
        );
        s.sub
            .reply(&rid, Duration::from_secs(5))
            .is_some_and(|st| st["unsent_bytes"] == 0 && st["state"] == "done")
    });
    assert!(drained, "{}", s.daemon.log());
    let dead = std::fs::read_to_string(s.dir.path().join("store/deadletter.jsonl")).unwrap();
    let dead = common::json_lines(&dead);
    assert!(
        dead.iter().any(|d| d["record"]["record"] == "result"),
        "{dead:?}"
    );
    // One connection throughout: no reconnect loop.
    assert!(
        !s.daemon.log().contains("retrying in"),
        "{}",
        s.daemon.log()
    );
}

#[test]
fn commands_sent_while_the_board_is_away_wait_in_its_session_and_expire() {
    let broker = Broker::start();
    let sub = Sub::start(broker.port);
    let mut s = start_daemon(broker, sub, "");
    assert!(s
        .daemon
        .stop_with(libc::SIGTERM, Duration::from_secs(15))
        .unwrap()
        .success());
    // Board away: one command without expiry, one that expires in 1 s.
    cmd(s.broker.port, "status-get", r#"{"request_id":"away"}"#);
    publish(
        s.broker.port,
        &format!("{P}/cmd/status-get"),
        r#"{"request_id":"away-exp"}"#,
        &[
            "-V",
            "mqttv5",
            "-D",
            "publish",
            "message-expiry-interval",
            "1",
        ],
    );
    std::thread::sleep(Duration::from_millis(2500));
    let cfg = s.dir.path().join("edgebench.toml");
    let d = DaemonProc::spawn(&cfg, &s.dir.path().join("daemon2.log"), &[]);
    let r = s
        .sub
        .reply("away", T)
        .unwrap_or_else(|| panic!("queued command lost:\n{}", d.log()));
    assert_eq!(r["ok"], true);
    std::thread::sleep(Duration::from_millis(500));
    assert!(replies_to(&s.sub, "away-exp").is_empty(), "expired");

    // The broker's expiry also bounds the wait in the daemon's own queue.
    cmd(
        s.broker.port,
        "sweep-start",
        r#"{"request_id":"long","sweep":"slow"}"#,
    );
    publish(
        s.broker.port,
        &format!("{P}/cmd/sweep-start"),
        r#"{"request_id":"short","sweep":"tiny"}"#,
        &[
            "-V",
            "mqttv5",
            "-D",
            "publish",
            "message-expiry-interval",
            "1",
        ],
    );
    assert_eq!(s.sub.reply("long", T).unwrap()["code"], "started");
    let q = s.sub.reply("short", T).unwrap();
    assert_eq!(q["code"], "queued", "{q}");
    let expired = s.sub.wait_for("/reply", T, |m| {
        let v = m.json();
        v["request_id"] == "short" && v["code"] == "expired"
    });
    assert!(expired.is_some(), "{}", d.log());
    let short = q["sweep_id"].as_str().unwrap();
    assert!(s
        .sub
        .json_on("/result")
        .iter()
        .all(|r| r["sweep_id"] != short));
}

fn private(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn tls_with_system_roots_and_secrets_that_stay_secret() {
    let certs = tempfile::tempdir().unwrap();
    tls::make_certs(certs.path());
    let other = tempfile::tempdir().unwrap();
    tls::make_certs(other.path());
    let c = |f: &str| certs.path().join(f).display().to_string();
    let tls_port = broker::free_port();
    let broker = Broker::start_with(&format!(
        "allow_anonymous true\nlistener {tls_port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n",
        c("ca.crt"),
        c("server.crt"),
        c("server.key")
    ));
    let sub = Sub::start(broker.port);
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("password");
    std::fs::write(&secret, "s3cret\n").unwrap();

    // A password over plain TCP: refused before anything is sent.
    private(&secret, 0o600);
    let mqtt_user = format!(
        "username = \"board-1\"\npassword_file = \"{}\"",
        secret.display()
    );
    let add_user = |port: u16, tls: &str| -> String {
        let p = write_config(dir.path(), "user.toml", port, tls);
        std::fs::read_to_string(p)
            .unwrap()
            .replace("keepalive_s = 5", &format!("keepalive_s = 5\n{mqtt_user}"))
    };
    let text = add_user(broker.port, "");
    std::fs::write(dir.path().join("user.toml"), &text).unwrap();
    let run_refused = |name: &str| -> String {
        let log = dir.path().join(format!("{name}.log"));
        let mut d = DaemonProc::spawn(&dir.path().join("user.toml"), &log, &[]);
        let mut status = None;
        assert!(wait_until(T, || {
            status = d.child.try_wait().ok().flatten();
            status.is_some()
        }));
        assert!(!status.unwrap().success(), "{}", d.log());
        d.log()
    };
    let log = run_refused("plain");
    assert!(log.contains("allow_plaintext_password"), "{log}");
    assert!(sub.on("/status").is_empty(), "nothing connected");

    // The password file readable by others: refused (like ssh).
    private(&secret, 0o640);
    let text = add_user(tls_port, "[mqtt.tls]\nenabled = true\n");
    std::fs::write(dir.path().join("user.toml"), &text).unwrap();
    let log = run_refused("open");
    assert!(
        log.contains("mqtt.password_file") && log.contains("chmod 600"),
        "{log}"
    );
    private(&secret, 0o600);

    // TLS trusting the system roots (here the store SSL_CERT_FILE names, as
    // OpenSSL does): connects, password and all.
    let cfg = dir.path().join("user.toml");
    let d = DaemonProc::spawn(
        &cfg,
        &dir.path().join("system.log"),
        &[("SSL_CERT_FILE", &c("ca.crt"))],
    );
    assert!(
        sub.wait_for("/status", T, |m| m.payload == "online")
            .is_some(),
        "TLS with system roots:\n{}\n{}",
        d.log(),
        broker.log()
    );
    drop(d);
    // System roots without our CA: the server is not trusted.
    let d = DaemonProc::spawn(
        &cfg,
        &dir.path().join("untrusted.log"),
        &[(
            "SSL_CERT_FILE",
            &other.path().join("ca.crt").display().to_string(),
        )],
    );
    assert!(
        wait_until(T, || d.log().contains("TLS failed")),
        "{}",
        d.log()
    );
}

#[test]
fn boards_from_one_image_with_one_device_id_do_not_kick_each_other_off() {
    let broker = Broker::start();
    let sub = Sub::start(broker.port);
    let dir = tempfile::tempdir().unwrap();
    let mut daemons = Vec::new();
    for (i, id) in [
        "0123456789abcdef0123456789abcdef",
        "fedcba9876543210fedcba9876543210",
    ]
    .iter()
    .enumerate()
    {
        let root = dir.path().join(format!("root{i}"));
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/machine-id"), format!("{id}\n")).unwrap();
        let sub_dir = dir.path().join(format!("board{i}"));
        std::fs::create_dir_all(&sub_dir).unwrap();
        let cfg = write_config(
            &sub_dir,
            "edgebench.toml",
            broker.port,
            &format!("[telemetry]\nsysroot = \"{}\"\n", root.display()),
        );
        daemons.push(DaemonProc::spawn(&cfg, &sub_dir.join("daemon.log"), &[]));
    }
    let connected = |log: &str| log.matches("New client connected").count();
    assert!(
        wait_until(T, || connected(&broker.log()) >= 2),
        "{}",
        broker.log()
    );
    std::thread::sleep(Duration::from_secs(2));
    let log = broker.log();
    let ids: std::collections::BTreeSet<String> = log
        .lines()
        .filter(|l| l.contains("New client connected"))
        .filter_map(|l| l.split(" as ").nth(1))
        .filter_map(|r| r.split_whitespace().next())
        .filter(|id| id.starts_with("edgebench-board-1-"))
        .map(str::to_string)
        .collect();
    assert_eq!(ids.len(), 2, "two client ids: {ids:?}\n{log}");
    assert!(
        !log.contains("already connected"),
        "one board kicked the other off:\n{log}"
    );
    for d in &daemons {
        assert!(!d.log().contains("disconnected"), "{}", d.log());
    }
    assert!(sub.on("/status").iter().any(|m| m.payload == "online"));
}
