//! `edgebench collect` with real parts: Debian's mosquitto, real SQLite files and a
//! real PostgreSQL server, the real binary as the collector (and the real daemon
//! running a real sweep with the committed tiny model). Redelivery after kill -9,
//! duplicates, bad payloads, a PostgreSQL restart mid-stream, two collectors sharing
//! a subscription.

#[path = "common/broker.rs"]
mod broker;
#[path = "common/collector.rs"]
mod collector;
mod common;
#[path = "common/postgres.rs"]
mod pg;

use std::collections::BTreeSet;
use std::time::Duration;

use broker::{publish, wait_until, Broker, DaemonProc};
use collector::{publish_file, publish_lines, result_line, write_config, Collector, LinePub};
use edgebench::fleet::{self, Filter};

const T: Duration = Duration::from_secs(60);

fn count(db: &str, table: &str) -> u64 {
    // A fresh connection each time: the collector writes meanwhile.
    fleet::open(db)
        .and_then(|mut s| s.count(table))
        .unwrap_or(0)
}

fn wait_count(c: &Collector, table: &str, n: u64) {
    let ok = wait_until(T, || count(&c.db, table) >= n);
    assert!(
        ok,
        "{table}: {} rows, wanted {n}\n{}",
        count(&c.db, table),
        c.log()
    );
}

fn run_ids(db: &str) -> Vec<String> {
    let mut s = fleet::open(db).unwrap();
    s.results(&Filter::default())
        .unwrap()
        .iter()
        .map(|v| v["run_id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn sqlite_collector_dedupes_redeliveries_survives_kill9_and_rejects_bad_payloads() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "c.toml",
        broker.port,
        "client_id = \"collector-a\"\nmax_payload_bytes = 65536\n",
    );
    let db = format!("sqlite:{}", dir.path().join("fleet.sqlite").display());
    let mut c = Collector::start(&cfg, &db, &dir.path().join("collect.log"));

    // 100 results, then the same 100 again (a board re-publishing after a reconnect).
    let lines: Vec<String> = (0..100)
        .map(|i| result_line("dev-1", &format!("r{i}")))
        .collect();
    publish_lines(broker.port, "edgebench/v1/dev-1/result", &lines);
    publish_lines(broker.port, "edgebench/v1/dev-1/result", &lines);
    wait_count(&c, "results", 100);

    // Bad payloads, each followed by the stream going on.
    let good = result_line("dev-1", "x");
    let bad: Vec<(&str, String, &str)> = vec![
        (
            "edgebench/v1/dev-1/result",
            "not json at all".into(),
            "not_json",
        ),
        (
            "edgebench/v1/dev-1/result",
            "{also not json".into(),
            "not_json",
        ),
        (
            "edgebench/v1/dev-1/result",
            good.replace("\"schema\":1", "\"schema\":7"),
            "schema",
        ),
        (
            "edgebench/v1/dev-1/result",
            good.replace("\"batch\":1", "\"batch\":\"one\""),
            "wrong_type",
        ),
        ("edgebench/v1/dev-2/result", good.clone(), "device_mismatch"),
        ("edgebench/v1/Bad_Id/result", good.clone(), "topic"),
        (
            "edgebench/v1/dev-1/result",
            format!("{{\"pad\":\"{}\"}}", "a".repeat(200_000)),
            "too_large",
        ),
    ];
    for (i, (topic, payload, _)) in bad.iter().enumerate() {
        // From a file: a 200 kB payload does not fit on a command line.
        let f = dir.path().join("payload");
        std::fs::write(&f, payload).unwrap();
        publish_file(broker.port, topic, &f);
        publish(
            broker.port,
            "edgebench/v1/dev-1/result",
            &result_line("dev-1", &format!("after-bad-{i}")),
            &[],
        );
    }
    wait_count(&c, "results", 100 + bad.len() as u64);
    wait_count(&c, "rejects", bad.len() as u64);
    let log = c.log();
    for (_, _, kind) in &bad {
        let n = log.matches(&format!("({kind}):")).count();
        assert_eq!(n, 1, "`{kind}` logged once (with its topic):\n{log}");
    }
    assert!(
        log.contains("rejected a message on edgebench/v1/Bad_Id/result (topic)"),
        "{log}"
    );
    {
        let conn = rusqlite::Connection::open(dir.path().join("fleet.sqlite")).unwrap();
        let kinds: BTreeSet<String> = conn
            .prepare("SELECT kind FROM rejects")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        let want: BTreeSet<String> = bad.iter().map(|b| b.2.to_string()).collect();
        assert_eq!(kinds, want);
        let big: i64 = conn
            .query_row(
                "SELECT payload_bytes FROM rejects WHERE kind = 'too_large'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(big > 200_000);
    }

    // kill -9, publish while it is away, restart: the broker kept the session.
    c.kill9();
    let later: Vec<String> = (0..50)
        .map(|i| result_line("dev-3", &format!("late{i}")))
        .collect();
    publish_lines(broker.port, "edgebench/v1/dev-3/result", &later);
    c.restart();
    wait_count(&c, "results", 100 + bad.len() as u64 + 50);
    let ids = run_ids(&db);
    let distinct: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(ids.len(), distinct.len(), "every run_id once");
    assert_eq!(
        count(&db, "devices"),
        2,
        "dev-1 and dev-3 (dev-2's record was rejected)"
    );
    c.stop();
    assert!(c.log().contains("collect: stopped;"));
}

#[test]
fn postgres_restart_mid_stream_loses_nothing() {
    let mut pgs = pg::Postgres::start();
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let db = pgs.new_db("fleet");
    let cfg = write_config(
        dir.path(),
        "c.toml",
        broker.port,
        "client_id = \"collector-pg\"\n",
    );
    let c = Collector::start(&cfg, &db, &dir.path().join("collect.log"));
    let mut p = LinePub::start(broker.port, "edgebench/v1/dev-1/result");
    for i in 0..100 {
        p.line(&result_line("dev-1", &format!("a{i}")));
    }
    wait_count(&c, "results", 100);
    pgs.stop();
    for i in 0..100 {
        p.line(&result_line("dev-1", &format!("b{i}")));
        std::thread::sleep(Duration::from_millis(5));
    }
    // The collector notices, stops acknowledging and retries.
    assert!(
        wait_until(T, || c.log().contains("unavailable")),
        "no store error logged:\n{}",
        c.log()
    );
    std::thread::sleep(Duration::from_secs(1));
    pgs.restart();
    for i in 0..100 {
        p.line(&result_line("dev-1", &format!("c{i}")));
    }
    p.finish();
    wait_count(&c, "results", 300);
    assert_eq!(run_ids(&db).len(), 300);
    assert!(c.log().contains("is back"), "{}", c.log());
}

#[test]
fn two_collectors_share_one_subscription_every_record_once() {
    let pgs = pg::Postgres::start();
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let db = pgs.new_db("shared");
    let mut cs: Vec<Collector> = ["one", "two"]
        .iter()
        .map(|n| {
            let cfg = write_config(
                dir.path(),
                &format!("{n}.toml"),
                broker.port,
                &format!("client_id = \"collector-{n}\"\nshare_group = \"fleet\"\n"),
            );
            Collector::start(&cfg, &db, &dir.path().join(format!("{n}.log")))
        })
        .collect();
    let n = 1000;
    let lines: Vec<String> = (0..n)
        .map(|i| result_line(&format!("dev-{}", i % 10), &format!("s{i}")))
        .collect();
    // Each line goes to its own device's topic.
    for d in 0..10 {
        let mine: Vec<String> = lines
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 10 == d)
            .map(|(_, l)| l.clone())
            .collect();
        publish_lines(broker.port, &format!("edgebench/v1/dev-{d}/result"), &mine);
    }
    wait_count(&cs[0], "results", n as u64);
    std::thread::sleep(Duration::from_millis(500));
    for c in &mut cs {
        c.stop();
    }
    let got: Vec<u64> = cs.iter().map(|c| c.received()).collect();
    assert!(
        got.iter().all(|&g| g > 0),
        "both collectors did work: {got:?}"
    );
    assert_eq!(
        got.iter().sum::<u64>(),
        n as u64,
        "each message went to one collector: {got:?}"
    );
    assert_eq!(
        pgs.psql("shared", "SELECT COUNT(DISTINCT run_id) FROM results"),
        n.to_string()
    );
}

#[test]
fn daemon_sweep_lands_in_sqlite_and_postgres() {
    let pgs = pg::Postgres::start();
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let pg_db = pgs.new_db("e2e");
    let lite_db = format!("sqlite:{}", dir.path().join("fleet.sqlite").display());
    let ca = write_config(
        dir.path(),
        "a.toml",
        broker.port,
        "client_id = \"collector-lite\"\n",
    );
    let cb = write_config(
        dir.path(),
        "b.toml",
        broker.port,
        "client_id = \"collector-pg\"\n",
    );
    let lite = Collector::start(&ca, &lite_db, &dir.path().join("a.log"));
    let pgc = Collector::start(&cb, &pg_db, &dir.path().join("b.log"));

    let daemon_cfg = dir.path().join("edgebench.toml");
    std::fs::write(
        &daemon_cfg,
        format!(
            r#"
[device]
id = "board-e2e"
[onnxruntime]
library = "{lib}"
[models]
dir = "{models}"
[store]
dir = "{store}"
[mqtt]
host = "127.0.0.1"
port = {port}
telemetry_interval_s = 0.5
backoff_min_s = 0.1
backoff_max_s = 1.0
[protocol]
warmup_runs = 1
warmup_s = 0.0
min_runs = 5
min_s = 0.05
max_s = 2.0
cooldown_max_s = 0.0
[sweeps.tiny]
models = ["tiny_cnn"]
batches = [1, 2]
eps = ["cpu"]
threads = [1]
precisions = ["fp32"]
"#,
            lib = common::ort_lib().display(),
            models = common::fixture_models().display(),
            store = dir.path().join("store").display(),
            port = broker.port,
        ),
    )
    .unwrap();
    let daemon = DaemonProc::spawn(&daemon_cfg, &dir.path().join("daemon.log"), &[]);
    // The daemon's retained status and info reach both stores.
    for c in [&lite, &pgc] {
        let ok = wait_until(T, || {
            fleet::open(&c.db)
                .and_then(|mut s| s.count("devices"))
                .unwrap_or(0)
                == 1
        });
        assert!(ok, "device row:\n{}\n{}", c.log(), daemon.log());
    }
    publish(
        broker.port,
        "edgebench/v1/board-e2e/cmd/sweep-start",
        r#"{"request_id": "e2e-1", "sweep": "tiny"}"#,
        &[],
    );
    for c in [&lite, &pgc] {
        let ok = wait_until(T, || {
            count(&c.db, "results") == 2 && count(&c.db, "summaries") == 1
        });
        assert!(ok, "sweep rows in {}:\n{}\n{}", c.db, c.log(), daemon.log());
    }
    let mut a = fleet::open(&lite_db).unwrap();
    let mut b = fleet::open(&pg_db).unwrap();
    let ra = a.results(&Filter::default()).unwrap();
    let rb = b.results(&Filter::default()).unwrap();
    assert_eq!(ra, rb, "both stores hold the same records");
    for r in &ra {
        assert_eq!(r["device_id"], "board-e2e");
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(r["ep"], "cpu");
    }
    let (recs, bad) = fleet::store::records(a.as_mut(), &Filter::default()).unwrap();
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(recs.len(), 3);
    let sweep_id = ra[0]["sweep_id"].as_str().unwrap().to_string();
    let ok = wait_until(T, || {
        pgs.psql(
            "e2e",
            &format!("SELECT state FROM sweeps WHERE sweep_id = '{sweep_id}'"),
        ) == "done"
    });
    assert!(ok, "sweep state done in the sweeps table");
    assert_eq!(
        pgs.psql(
            "e2e",
            "SELECT online FROM devices WHERE device_id = 'board-e2e'"
        ),
        "t"
    );
    let ok = wait_until(T, || {
        pgs.psql("e2e", "SELECT COUNT(*) FROM telemetry")
            .parse::<u64>()
            .unwrap()
            > 0
    });
    assert!(ok, "telemetry rows:\n{}\n{}", pgc.log(), daemon.log());
    let info = pgs.psql("e2e", "SELECT info->>'device_id' FROM devices");
    assert_eq!(info, "board-e2e");
}

#[test]
fn under_systemd_ready_stopping_and_default_store_in_state_directory() {
    use std::os::unix::net::UnixDatagram;
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let cfg = write_config(
        dir.path(),
        "c.toml",
        broker.port,
        "client_id = \"under-systemd\"\n",
    );
    let log = dir.path().join("c.log");
    let mut child = collector::spawn_with_env(
        &cfg,
        &log,
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
            ("STATE_DIRECTORY", state.to_str().unwrap()),
        ],
    );
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).expect("a notification");
    let first = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(first.starts_with("READY=1"), "{first}");
    let db = format!("sqlite:{}", state.join("fleet.sqlite").display());
    assert!(
        wait_until(T, || std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("collect: connected")),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    std::thread::sleep(Duration::from_millis(300));
    publish(
        broker.port,
        "edgebench/v1/dev-9/result",
        &result_line("dev-9", "sd-1"),
        &[],
    );
    assert!(
        wait_until(T, || count(&db, "results") == 1),
        "stored in $STATE_DIRECTORY/fleet.sqlite"
    );
    broker::signal(child.id(), libc::SIGTERM);
    let mut stopping = false;
    while let Ok(n) = sock.recv(&mut buf) {
        if String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1") {
            stopping = true;
            break;
        }
    }
    assert!(stopping, "STOPPING=1 sent");
    let st = child.wait().unwrap();
    assert!(st.success(), "{st}");
}
