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
