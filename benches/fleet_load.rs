//! Ingest load of the fleet store: N simulated boards (one MQTT connection each)
//! publish result records at a fixed rate to a real mosquitto; in the same run three
//! consumers subscribe: `mosquitto_sub` (output thrown away, lines counted), and
//! `edgebench collect` into SQLite and into PostgreSQL (separate sessions, so the
//! broker fans every record out to all three).
//!
//! Reported per consumer: records received / stored, records/s over the publishing
//! window (first publish to the last record in), and for the collectors the
//! end-to-end latency from publish (`ts`, set by the generator when it publishes) to
//! the collector's write (`stored_at`, taken when the batch is written, just before its
//! commit), p50 / p99 / max, and the collector's peak RSS (VmHWM).
//!
//! `cargo bench --bench fleet_load -- [BOARDS] [RATE_PER_BOARD_HZ] [SECONDS]`
//! (default 1000 boards, 2 records/s each, 20 s). `make bench-fleet-load` runs it.

#[path = "../tests/common/broker.rs"]
mod broker;
#[path = "../tests/common/postgres.rs"]
mod pg;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, MqttOptions};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn raise_fd_limit() {
    // SAFETY: plain getrlimit/setrlimit on our own process (children inherit it).
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 {
            r.rlim_cur = r.rlim_max.min(65_536);
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

fn record(device: &str, run_id: &str, ts: i64) -> String {
    format!(
        r#"{{"record":"result","schema":1,"ts":{ts},"device_id":"{device}","board":"sim","sweep_id":"load","run_id":"{run_id}","status":"ok","model":"mobilenet_v2","backend":"ort","ep":"cpu","precision":"fp32","batch":1,"threads":0,"iterations":200,"latency_ms_p50":4.25,"latency_ms_p99":5.5,"throughput_ips":235.3,"runtime":"onnxruntime","edgebench_version":"0.1.0"}}"#
    )
}

fn vm_hwm_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn collector(config: &std::path::Path, db: &str, log: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_edgebench"))
        .arg("collect")
        .arg("--config")
        .arg(config)
        .arg("--db")
        .arg(db)
        .env("EDGEBENCH_LOG", "warn")
        .env_remove("JOURNAL_STREAM")
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("start edgebench collect")
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// (ts, stored_at) of every stored result.
fn latencies_sqlite(path: &std::path::Path) -> Vec<(i64, i64)> {
    let c = rusqlite::Connection::open(path).unwrap();
    let mut st = c.prepare("SELECT ts, stored_at FROM results").unwrap();
    st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
        .unwrap()
        .map(|r| {
            let (ts, at) = r.unwrap();
            (ts, edgebench::fleet::schema::parse_rfc3339_ms(&at).unwrap())
        })
        .collect()
}

fn latencies_pg(url: &str) -> Vec<(i64, i64)> {
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    c.query(
        "SELECT ts, (EXTRACT(EPOCH FROM stored_at) * 1000)::BIGINT FROM results",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1)))
    .collect()
}

/// Rates are over the window from the first record's publish to the last record's
/// arrival (connection set-up of the boards is not in it).
fn report(name: &str, lat: &[(i64, i64)], pid: Option<u32>, rss: u64) {
    let mut d: Vec<i64> = lat.iter().map(|(ts, at)| at - ts).collect();
    d.sort_unstable();
    let first_pub = lat.iter().map(|(ts, _)| *ts).min().unwrap_or(0);
    let last = lat.iter().map(|(_, at)| *at).max().unwrap_or(first_pub);
    let span = ((last - first_pub) as f64 / 1000.0).max(0.001);
    println!(
        "{name:<22} {:>8} stored  {:>8.0} records/s  publish->write p50 {:>5} ms  p99 {:>5} ms  max {:>5} ms  peak RSS {:>6.1} MiB{}",
        lat.len(),
        lat.len() as f64 / span,
        percentile(&d, 0.5),
        percentile(&d, 0.99),
        d.last().copied().unwrap_or(0),
        rss as f64 / 1024.0,
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    );
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let boards: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let rate: f64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(2.0);
    let secs: f64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(20.0);
    raise_fd_limit();
    let total_expected = (boards as f64 * rate * secs).round() as u64;
    println!(
        "fleet load: {boards} boards x {rate} records/s for {secs} s = {:.0} records/s offered, {total_expected} records",
        boards as f64 * rate
    );

    let broker = broker::Broker::start_with("allow_anonymous true\nmax_connections -1\n");
    let pgs = pg::Postgres::start();
    let pg_url = pgs.new_db("load");
    let dir = tempfile::tempdir().unwrap();
    let lite_path = dir.path().join("fleet.sqlite");
    let lite_url = format!("sqlite:{}", lite_path.display());
    let cfg = |name: &str| {
        let p = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &p,
            format!(
                "[mqtt]\nhost = \"127.0.0.1\"\nport = {}\n[collect]\nclient_id = \"load-{name}\"\n",
                broker.port
            ),
        )
        .unwrap();
        p
    };
    let mut c_lite = collector(&cfg("sqlite"), &lite_url, &dir.path().join("sqlite.log"));
    let mut c_pg = collector(&cfg("pg"), &pg_url, &dir.path().join("pg.log"));

    // The bare subscriber: counts lines, keeps nothing.
    let sub_count = Arc::new(AtomicU64::new(0));
    let sub_last = Arc::new(AtomicU64::new(0));
    let mut sub = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &broker.port.to_string(), "-q", "1"])
        .args(["-V", "mqttv5", "-c", "-i", "load-sub", "-x", "3600"])
        .args(["-t", "edgebench/v1/+/result"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto_sub");
    let out = sub.stdout.take().unwrap();
    let sub_first = Arc::new(AtomicU64::new(u64::MAX));
    let sub_lat = Arc::new(std::sync::Mutex::new(Vec::<i64>::new()));
    let (sc, sl, sf, slat) = (
        sub_count.clone(),
        sub_last.clone(),
        sub_first.clone(),
        sub_lat.clone(),
    );
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            sc.fetch_add(1, Ordering::Relaxed);
            sl.store(now_ms() as u64, Ordering::Relaxed);
            // The record's publish time, for the rate's window.
            if let Some(ts) = line
                .split("\"ts\":")
                .nth(1)
                .and_then(|r| r.split(',').next())
                .and_then(|t| t.parse::<u64>().ok())
            {
                sf.fetch_min(ts, Ordering::Relaxed);
                slat.lock().unwrap().push(now_ms() - ts as i64);
            }
        }
    });
    // Collectors connected and subscribed (their stores exist), subscriber up.
    let ready = broker::wait_until(Duration::from_secs(30), || {
        let logs = broker.log();
        ["load-sqlite", "load-pg", "load-sub"].iter().all(|id| {
            logs.contains(&format!("SUBSCRIBE from {id}"))
                || logs.contains(&format!("{id} 1 edgebench"))
        })
    });
    if !ready {
        // mosquitto's log lines differ between versions: fall back to a pause.
        std::thread::sleep(Duration::from_secs(3));
    }
    std::thread::sleep(Duration::from_millis(500));

    // The boards.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let published = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for b in 0..boards {
            let published = published.clone();
            let port = broker.port;
            tasks.push(tokio::spawn(async move {
                let dev = format!("sim-{b:04}");
                let mut o = MqttOptions::new(format!("load-board-{b}"), "127.0.0.1", port);
                o.set_keep_alive(Duration::from_secs(30));
                let (client, mut el) = AsyncClient::new(o, 64);
                let poll = tokio::spawn(async move {
                    loop {
                        if el.poll().await.is_err() {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                });
                let period = Duration::from_secs_f64(1.0 / rate);
                // Spread the boards over the period.
                let offset = period.mul_f64(b as f64 / boards as f64);
                tokio::time::sleep(offset).await;
                let mut tick = tokio::time::interval(period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                let n = (rate * secs).round() as u64;
                let topic = format!("edgebench/v1/{dev}/result");
                for i in 0..n {
                    tick.tick().await;
                    let payload = record(&dev, &format!("{dev}-{i}"), now_ms());
                    if client
                        .publish(topic.clone(), QoS::AtLeastOnce, false, payload)
                        .await
                        .is_ok()
                    {
                        published.fetch_add(1, Ordering::Relaxed);
                    }
                }
                // Let the last publishes leave before the connection goes.
                tokio::time::sleep(Duration::from_secs(2)).await;
                poll.abort();
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
    let pub_s = t0.elapsed().as_secs_f64();
    let published = published.load(Ordering::Relaxed);
    println!("published {published} records ({pub_s:.1} s with connecting and draining)");
    // Drain: wait until every consumer has everything (or 60 s).
    let count_lite = || {
        rusqlite::Connection::open(&lite_path)
            .and_then(|c| c.query_row("SELECT COUNT(*) FROM results", [], |r| r.get::<_, i64>(0)))
            .unwrap_or(0) as u64
    };
    let count_pg = || {
        pgs.psql("load", "SELECT COUNT(*) FROM results")
            .parse::<u64>()
            .unwrap_or(0)
    };
    broker::wait_until(Duration::from_secs(60), || {
        sub_count.load(Ordering::Relaxed) >= published
            && count_lite() >= published
            && count_pg() >= published
    });
    let rss_lite = vm_hwm_kib(c_lite.id());
    let rss_pg = vm_hwm_kib(c_pg.id());
    let sub_n = sub_count.load(Ordering::Relaxed);
    let sub_span = (sub_last.load(Ordering::Relaxed) as f64
        - sub_first.load(Ordering::Relaxed) as f64)
        .max(1.0)
        / 1000.0;
    let mut sl_sorted = sub_lat.lock().unwrap().clone();
    sl_sorted.sort_unstable();
    println!(
        "{:<22} {:>8} received {:>8.0} records/s  publish->receive p50 {:>5} ms  p99 {:>5} ms  max {:>5} ms  peak RSS {:>6.1} MiB",
        "mosquitto_sub",
        sub_n,
        sub_n as f64 / sub_span,
        percentile(&sl_sorted, 0.5),
        percentile(&sl_sorted, 0.99),
        sl_sorted.last().copied().unwrap_or(0),
        vm_hwm_kib(sub.id()) as f64 / 1024.0
    );
    let ll = latencies_sqlite(&lite_path);
    report("collect -> SQLite", &ll, Some(c_lite.id()), rss_lite);
    let lp = latencies_pg(&pg_url);
    report("collect -> PostgreSQL", &lp, Some(c_pg.id()), rss_pg);
    for (name, n) in [("SQLite", ll.len() as u64), ("PostgreSQL", lp.len() as u64)] {
        println!(
            "{name}: stored {n} of {published} published ({:.1} % of what mosquitto_sub received)",
            100.0 * n as f64 / sub_n.max(1) as f64
        );
    }
    for c in [&mut c_lite, &mut c_pg] {
        broker::signal(c.id(), libc::SIGTERM);
        let _ = c.wait();
    }
    let _ = sub.kill();
    let _ = sub.wait();
}
