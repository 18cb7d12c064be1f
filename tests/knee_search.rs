//! Throughput confidence intervals (batch means) and the stop rule on the mean, driven
//! through `edgebench run` against the real ONNX Runtime and the committed tiny models.

mod common;
use common::*;

#[test]
fn results_carry_a_throughput_interval_and_the_mean_stop_rule_works() {
    let env = Env::new(
        &ort_lib(),
        "target_rel_ci = 0.5\nci_target_stat = \"mean\"\n",
    );
    let out = env.path("r.jsonl");
    let o = env.run(
        "run",
        &[
            "--models",
            "tiny_cnn",
            "--batch",
            "1,4",
            "--threads",
            "1",
            "--set",
            "protocol.min_runs=40",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let recs = json_lines(&std::fs::read_to_string(&out).unwrap());
    let res = results(&recs);
    assert_eq!(res.len(), 2);
    for r in res {
        assert_eq!(r["status"], "ok", "{r}");
        let t = r["throughput_ips"].as_f64().unwrap();
        let lo = r["throughput_ips_ci_low"].as_f64().unwrap();
        let hi = r["throughput_ips_ci_high"].as_f64().unwrap();
        assert!(lo > 0.0 && lo <= t && t <= hi, "{lo} <= {t} <= {hi}");
        assert_eq!(r["ci_blocks"], 10, "40+ runs give ten blocks: {r}");
        let rel = r["mean_rel_ci"].as_f64().unwrap();
        // A 50 % target on a steady tiny model is met right after the minimums.
        assert!(rel <= 0.5, "{rel}");
        assert_eq!(r["stop_reason"], "ci_target", "{r}");
        assert!(r["iterations"].as_u64().unwrap() >= 40);
    }
}

#[test]
fn unknown_ci_statistic_is_named() {
    let env = Env::new(&ort_lib(), "ci_target_stat = \"mode\"\n");
    let o = env.run("run", &["--models", "tiny_cnn", "--batch", "1"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("ci_target_stat") || e.contains("mode"), "{e}");
    assert!(e.contains("median") && e.contains("mean"), "{e}");
}

/// `--batch auto` runs the knee search: normal result records labelled
/// `batch_search = "auto"`, in the order the search asked for them (replayed through
/// the pure state machine here), and a summary whose knee is among them.
#[test]
fn batch_auto_runs_the_knee_search() {
    use edgebench::bench::search::{BatchSearchConfig, KneeSearch, Measured, Step};
    let env = Env::new(
        &ort_lib(),
        "[batch_search]\nmax_batch = 16\nrefine_points = 2\n",
    );
    let out = env.path("r.jsonl");
    let o = env.run(
        "run",
        &[
            "--models",
            "tiny_cnn",
            "--batch",
            "auto",
            "--threads",
            "1",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let recs = json_lines(&std::fs::read_to_string(&out).unwrap());
    let res = results(&recs);
    assert!(res.len() >= 2, "at least batches 1 and 2: {res:?}");
    let batches: Vec<u32> = res
        .iter()
        .map(|r| r["batch"].as_u64().unwrap() as u32)
        .collect();
    assert_eq!(batches[0], 1);
    assert!(batches.iter().all(|b| *b <= 16), "{batches:?}");
    // Replay: the same outcomes fed to the state machine ask for the same batches.
    let mut s = KneeSearch::new(
        &BatchSearchConfig {
            max_batch: 16,
            refine_points: 2,
        },
        0.95,
    );
    for r in &res {
        assert_eq!(r["batch_search"], "auto", "{r}");
        assert_eq!(r["status"], "ok", "{r}");
        let b = r["batch"].as_u64().unwrap() as u32;
        assert_eq!(
            s.next(),
            Step::Measure(b),
            "runner measured {b}: {batches:?}"
        );
        let ci = r["throughput_ips_ci_low"]
            .as_f64()
            .zip(r["throughput_ips_ci_high"].as_f64());
        s.record(
            b,
            Some(Measured::new(r["throughput_ips"].as_f64().unwrap(), ci)),
        );
    }
    assert_eq!(s.next(), Step::Done, "the runner stopped with the search");
    let sums = summaries(&recs);
    assert_eq!(sums.len(), 1);
    assert_eq!(
        sums[0]["knee_batch"].as_u64().map(|k| k as u32),
        s.knee(),
        "summary knee = search knee"
    );
}

#[test]
fn batch_auto_argument_errors_are_named() {
    let env = Env::new(&ort_lib(), "");
    let o = env.run("run", &["--models", "tiny_cnn", "--batch", "auto,4"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("`auto` cannot be combined"),
        "{}",
        stderr(&o)
    );
    let o = env.run("run", &["--models", "tiny_cnn", "--batch", "four"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("invalid value 'four'") && stderr(&o).contains("not a batch size"),
        "{}",
        stderr(&o)
    );
    let env = Env::new(&ort_lib(), "[batch_search]\nmax_batch = 0\n");
    let o = env.run("run", &["--models", "tiny_cnn", "--batch", "auto"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("batch_search: `max_batch`"),
        "{}",
        stderr(&o)
    );
}
