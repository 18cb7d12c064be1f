//! Crash safety of `edgebench collect`: kill -9 at random moments while a stream with
//! duplicates flows (real mosquitto, real SQLite and PostgreSQL). Every distinct
//! run_id must end up stored exactly once, none missing.
//!
//! `make test` runs a bounded form (5 kills per engine); `make bench-fleet-crash` runs
//! 50 (`EDGEBENCH_CRASH_KILLS=50`).

#[path = "common/broker.rs"]
mod broker;
#[path = "common/collector.rs"]
mod collector;
#[path = "common/postgres.rs"]
mod pg;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use broker::{wait_until, Broker};
use collector::{result_line, write_config, Collector, LinePub};
use edgebench::fleet::{self, Filter};
use rand::{Rng, SeedableRng};

fn kills() -> usize {
    std::env::var("EDGEBENCH_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

fn crash_run(db: &str, label: &str) {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "c.toml",
        broker.port,
        &format!("client_id = \"crash-{label}\"\nbatch_size = 100\n"),
    );
    let mut c = Collector::start(&cfg, db, &dir.path().join("collect.log"));
    let n_kills = kills();
    let done = Arc::new(AtomicBool::new(false));
    let seed = std::process::id() as u64;
    // The stream: distinct ids at about 1,000 records/s, each id published twice (the
    // second copy a few hundred records later), for as long as the kills take.
    let port = broker.port;
    let d2 = done.clone();
    let publisher = std::thread::spawn(move || {
        let mut p = LinePub::start(port, "edgebench/v1/crash-board/result");
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        let mut sent: Vec<String> = Vec::new();
        let mut i = 0usize;
        while !d2.load(Ordering::Relaxed) {
            for _ in 0..10 {
                let id = format!("run-{i}");
                p.line(&result_line("crash-board", &id));
                sent.push(id);
                i += 1;
                if i > 300 && rng.gen_bool(0.5) {
                    let dup = &sent[rng.gen_range(i - 300..i)];
                    p.line(&result_line("crash-board", dup));
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        p.finish();
        sent
    });
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed ^ 0x5eed);
    let started = Instant::now();
    for _ in 0..n_kills {
        std::thread::sleep(Duration::from_millis(rng.gen_range(20..600)));
        c.kill9();
        c.restart();
    }
    std::thread::sleep(Duration::from_millis(500));
    done.store(true, Ordering::Relaxed);
    let sent = publisher.join().unwrap();
    let want: BTreeSet<String> = sent.into_iter().collect();
    let ok = wait_until(Duration::from_secs(120), || {
        fleet::open(db)
            .and_then(|mut s| s.count("results"))
            .unwrap_or(0) as usize
            >= want.len()
    });
    let mut s = fleet::open(db).unwrap();
    let got: Vec<String> = s
        .results(&Filter::default())
        .unwrap()
        .iter()
        .map(|v| v["run_id"].as_str().unwrap().to_string())
        .collect();
    let got_set: BTreeSet<String> = got.iter().cloned().collect();
    let missing: Vec<&String> = want.difference(&got_set).take(10).collect();
    assert!(
        ok && missing.is_empty(),
        "missing run_ids {missing:?} of {}:\n{}",
        want.len(),
        c.log()
    );
    assert_eq!(got.len(), got_set.len(), "a run_id stored twice");
    assert_eq!(got_set, want, "nothing extra");
    println!(
        "{label}: {n_kills} kills -9 in {:.1} s, {} distinct run_ids published (with duplicates), {} stored, each once",
        started.elapsed().as_secs_f64(),
        want.len(),
        got.len()
    );
}

#[test]
fn kill9_during_a_stream_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    crash_run(
        &format!("sqlite:{}", dir.path().join("fleet.sqlite").display()),
        "sqlite",
    );
}

#[test]
fn kill9_during_a_stream_postgres() {
    let pgs = pg::Postgres::start();
    let db = pgs.new_db("crash");
    crash_run(&db, "postgres");
}
