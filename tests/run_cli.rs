//! `edgebench run` and friends, driven as a user would, against the real ONNX Runtime
//! library and the committed tiny models.

mod common;
use common::*;

/// Keys every successful result record must carry (DESIGN.md section 5).
const CONTRACT_KEYS: &[&str] = &[
    "record",
    "schema",
    "ts",
    "device_id",
    "board",
    "sweep_id",
    "run_id",
    "status",
    "model",
    "model_sha256",
    "task",
    "backend",
    "ep",
    "precision",
    "batch",
    "batch_mode",
    "threads",
    "input_shape",
    "iterations",
    "duration_s",
    "stop_reason",
    "init_ms",
    "first_ms",
    "latency_ms_mean",
    "latency_ms_std",
    "latency_ms_min",
    "latency_ms_max",
    "latency_ms_p50",
    "latency_ms_p90",
    "latency_ms_p95",
    "latency_ms_p99",
    "latency_ms_p999",
    "throughput_ips",
    "cv",
    "outliers",
    "runtime",
    "runtime_version",
    "edgebench_version",
    "kernel",
];

#[test]
fn sweep_writes_contract_records_and_knee() {
    let env = Env::new(&ort_lib(), "");
    let out = env.path("r.jsonl");
    let o = env.run(
        "run",
        &[
            "--models",
            "tiny_cnn,tiny_seg",
            "--batch",
            "1,2,4",
            "--threads",
            "1",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let recs = json_lines(&std::fs::read_to_string(&out).unwrap());
    let res = results(&recs);
    assert_eq!(res.len(), 6, "one result per configuration");
    for r in &res {
        assert_eq!(r["status"], "ok", "{r}");
        for k in CONTRACT_KEYS {
            assert!(r.get(k).is_some(), "key {k} missing in {r}");
        }
        // Flat: no nested objects or arrays, no nulls.
        for (k, v) in r.as_object().unwrap() {
            assert!(
                !v.is_object() && !v.is_array() && !v.is_null(),
                "{k} is not flat: {v}"
            );
        }
        assert_eq!(r["runtime"], "onnxruntime");
        assert_eq!(r["batch_mode"], "native");
        assert_eq!(r["ep"], "cpu");
        // The architecture from the fixture manifest, and the median's 95 % interval
        // around the median.
        assert_eq!(r["arch"], r["model"], "{r}");
        let (lo, med, hi) = (
            r["latency_ms_p50_ci_low"].as_f64().unwrap(),
            r["latency_ms_p50"].as_f64().unwrap(),
            r["latency_ms_p50_ci_high"].as_f64().unwrap(),
        );
        assert!(lo <= med && med <= hi, "{lo} {med} {hi}");
        // throughput = batch * iterations / sum(latency)
        let b = r["batch"].as_f64().unwrap();
        let n = r["iterations"].as_f64().unwrap();
        let sum_s = r["latency_ms_sum"].as_f64().unwrap() / 1000.0;
        let t = r["throughput_ips"].as_f64().unwrap();
        assert!(
            ((b * n / sum_s) - t).abs() / t < 1e-4,
            "throughput {t} vs {}",
            b * n / sum_s
        );
        // Order of percentiles.
        let p = |k: &str| r[k].as_f64().unwrap();
        assert!(
            p("latency_ms_min") <= p("latency_ms_p50")
                && p("latency_ms_p50") <= p("latency_ms_p90")
        );
        assert!(
            p("latency_ms_p99") <= p("latency_ms_p999")
                && p("latency_ms_p999") <= p("latency_ms_max")
        );
        assert!(r["iterations"].as_u64().unwrap() >= 10, "min_runs honoured");
        // max_s (2 s) is far above what 10 runs of a tiny model take: anything but
        // the minimums being met is a defect.
        assert_eq!(r["stop_reason"], "min_runs_and_time", "{r}");
    }
    let shape = res
        .iter()
        .find(|r| r["model"] == "tiny_cnn" && r["batch"] == 4)
        .unwrap();
    assert_eq!(shape["input_shape"], "4x3x32x32");
    let sums = summaries(&recs);
    assert_eq!(sums.len(), 2, "one summary per model: {sums:?}");
    for s in sums {
        // The knee follows from the curve: the smallest batch reaching knee_fraction of
        // the peak, the peak being the curve's maximum (recomputed here from the
        // recorded curve, so a knee that ignores the data fails).
        let curve: Vec<(u64, f64)> = s["curve"]
            .as_str()
            .unwrap()
            .split(',')
            .map(|p| {
                let (b, t) = p.split_once(':').unwrap();
                (b.parse().unwrap(), t.parse().unwrap())
            })
            .collect();
        assert_eq!(curve.iter().map(|c| c.0).collect::<Vec<_>>(), vec![1, 2, 4]);
        let (peak_b, peak_t) = curve
            .iter()
            .copied()
            .fold((0, 0.0), |m, c| if c.1 > m.1 { c } else { m });
        let fraction = s["knee_fraction"].as_f64().unwrap();
        let want_knee = curve
            .iter()
            .find(|c| c.1 >= fraction * peak_t - 1e-3)
            .unwrap()
            .0;
        assert_eq!(s["knee_batch"].as_u64().unwrap(), want_knee, "{s}");
        assert_eq!(s["peak_batch"].as_u64().unwrap(), peak_b, "{s}");
        assert!((s["peak_throughput_ips"].as_f64().unwrap() - peak_t).abs() <= 1e-3 * peak_t);
        let (lo, hi) = (
            s["knee_batch_low"].as_u64().unwrap(),
            s["knee_batch_high"].as_u64().unwrap(),
        );
        assert!(lo <= want_knee && want_knee <= hi, "{s}");
        assert!(
            s["sustained_knee_batch"]
                .as_u64()
                .is_some_and(|b| b >= want_knee)
                || s.get("sustained_knee_batch").is_none(),
            "{s}"
        );
        assert_eq!(s["batch_mode"], "native");
        assert_eq!(s["arch"], s["model"]);
        assert!(s["peak_throughput_ips"].as_f64().unwrap() > 0.0);
        assert_eq!(s["curve"].as_str().unwrap().split(',').count(), 3);
    }
    // The table on stdout.
    let table = stdout(&o);
    assert!(
        table.contains("p50 ms") && table.contains("samples/s") && table.contains("knee  tiny_cnn"),
        "{table}"
    );
}

#[test]
fn failed_configuration_is_recorded_and_sweep_goes_on() {
    let env = Env::new(&ort_lib(), "");
    let o = env.run(
        "run",
        &[
            "--models",
            "missing_model,tiny_cnn",
            "--batch",
            "1",
            "--json",
            "--out",
            "/dev/null",
        ],
    );
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let recs = json_lines(&stdout(&o));
    let res = results(&recs);
    assert_eq!(res.len(), 2);
    assert_eq!(res[0]["model"], "missing_model");
    assert_eq!(res[0]["status"], "failed");
    assert!(
        res[0]["error"].as_str().unwrap().contains("missing"),
        "{}",
        res[0]
    );
    assert_eq!(
        res[1]["status"], "ok",
        "the sweep continued after the failure"
    );
    // --strict turns a failure into a non-zero exit.
    let o = env.run(
        "run",
        &[
            "--models",
            "missing_model",
            "--batch",
            "1",
            "--strict",
            "--out",
            "/dev/null",
        ],
    );
    assert_eq!(o.status.code(), Some(3));
}

#[test]
fn older_onnxruntime_library_loads_and_is_recorded() {
    let env = Env::new(&ort_old_lib(), "");
    let o = env.run(
        "run",
        &[
            "--models",
            "tiny_cnn",
            "--batch",
            "1,2",
            "--json",
            "--out",
            "/dev/null",
        ],
    );
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let recs = json_lines(&stdout(&o));
    for r in results(&recs) {
        assert_eq!(r["status"], "ok", "{r}");
        let v = r["runtime_version"].as_str().unwrap();
        assert!(
            v.starts_with("1.19") || v.starts_with("1.18") || v.starts_with("1.20"),
            "old library used: {v}"
        );
    }
}

#[test]
fn int8_variant_is_resolved_by_precision() {
    let env = Env::new(&ort_lib(), "");
    let o = env.run(
        "run",
        &[
            "--models",
            "tiny_cnn",
            "--precision",
            "fp32,int8",
            "--batch",
            "1",
            "--json",
            "--out",
            "/dev/null",
        ],
    );
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let recs = json_lines(&stdout(&o));
    let res = results(&recs);
    assert_eq!(res.len(), 2);
    let int8 = res.iter().find(|r| r["precision"] == "int8").unwrap();
    assert_eq!(int8["status"], "ok", "{int8}");
    assert_ne!(
        int8["model_sha256"],
        res.iter().find(|r| r["precision"] == "fp32").unwrap()["model_sha256"]
    );
}

#[test]
fn provider_missing_from_build_fails_with_list_or_falls_back() {
    let env = Env::new(&ort_lib(), "");
    for ep in ["cuda", "tensorrt", "xnnpack", "acl"] {
        let o = env.run(
            "run",
            &[
                "--models",
                "tiny_cnn",
                "--batch",
                "1",
                "--ep",
                ep,
                "--json",
                "--out",
                "/dev/null",
            ],
        );
        assert!(o.status.success(), "stderr: {}", stderr(&o));
        let recs = json_lines(&stdout(&o));
        let r = results(&recs)[0];
        assert_eq!(r["status"], "failed", "{r}");
        let e = r["error"].as_str().unwrap();
        assert!(
            e.contains(&format!("`{ep}`")) && e.contains("not in this ONNX Runtime build"),
            "{e}"
        );
        assert!(
            e.contains("this build has: ") && e.contains("cpu"),
            "lists what the build has: {e}"
        );
    }
    // allow_fallback: runs on cpu and says so.
    let cfg = std::fs::read_to_string(env.config())
        .unwrap()
        .replace("[onnxruntime]\n", "[onnxruntime]\nallow_fallback = true\n");
    std::fs::write(env.config(), cfg).unwrap();
    let o = env.run(
        "run",
        &[
            "--models",
            "tiny_cnn",
            "--batch",
            "1",
            "--ep",
            "cuda",
            "--json",
            "--out",
            "/dev/null",
        ],
    );
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let recs = json_lines(&stdout(&o));
    let r = results(&recs)[0];
    assert_eq!(r["status"], "ok", "{r}");
    assert_eq!(r["ep"], "cpu", "records the provider actually used");
    assert_eq!(r["ep_requested"], "cuda");
    assert!(r["ep_fallback"]
        .as_str()
        .unwrap()
        .contains("not in this ONNX Runtime build"));
}

#[test]
fn session_options_are_recorded() {
    let env = Env::new(&ort_lib(), "");
    let cfg = std::fs::read_to_string(env.config()).unwrap().replace(
        "[onnxruntime]\n",
        "[onnxruntime]\ninter_threads = 1\nspinning = false\ngraph_optimization = \"basic\"\n",
    );
    std::fs::write(env.config(), cfg).unwrap();
    let o = env.run(
        "run",
        &[
            "--models",
            "tiny_cnn",
            "--batch",
            "1",
            "--threads",
            "2",
            "--json",
            "--out",
            "/dev/null",
        ],
    );
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let recs = json_lines(&stdout(&o));
    let r = results(&recs)[0];
    assert_eq!(r["threads"], 2);
    assert_eq!(r["ort_inter_threads"], 1);
    assert_eq!(r["ort_spinning"], false);
    assert_eq!(r["ort_graph_optimization"], "basic");
}

/// Each bad input: non-zero exit and one clear line naming the problem.
#[test]
fn bad_inputs_get_one_clear_error() {
    let env = Env::new(&ort_lib(), "");
    let cases: &[(&[&str], &str)] = &[
        (
            &["--models", "no_such_model"],
            "unknown model `no_such_model`",
        ),
        (&["--models", "../etc/passwd"], "not a plain name"),
        (&["--batch", "0"], "batch size 0"),
        (&["--batch", "1,99999999"], "above the limit"),
        (&["--batch", "two"], "invalid value 'two'"),
        (&["--ep", "warp9"], "unknown execution provider `warp9`"),
        (&["--sweep", "nope"], "no sweep named `nope`"),
        (&["--threads", "100000"], "above the limit"),
        (&["--precision", "fp64"], "unknown precision `fp64`"),
    ];
    for (args, want) in cases {
        let o = env.run("run", args);
        assert!(!o.status.success(), "{args:?} should fail");
        let e = stderr(&o);
        assert!(e.contains(want), "{args:?}: expected {want:?} in {e:?}");
        assert!(
            e.trim().lines().count() <= 3,
            "short error for {args:?}: {e}"
        );
    }
}

#[test]
fn unknown_config_key_names_key_and_source() {
    let env = Env::new(&ort_lib(), "");
    std::fs::write(env.config(), "[protocol]\nwarmup_runz = 3\n").unwrap();
    let o = env.run("run", &[]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("protocol.warmup_runz") && e.contains(&env.config().display().to_string()),
        "{e}"
    );

    let env = Env::new(&ort_lib(), "");
    let mut c = std::process::Command::new(bin());
    c.args(["check-config", "--config"]).arg(env.config());
    scrub(&mut c);
    let o = c.env("EDGEBENCH__MQTT__PROT", "1883").output().unwrap();
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("EDGEBENCH__MQTT__PROT") && e.contains("prot"),
        "{e}"
    );
}

#[test]
fn missing_onnxruntime_library_is_a_clear_error() {
    let env = Env::new(std::path::Path::new("/nonexistent/libonnxruntime.so"), "");
    let o = env.run("run", &["--models", "tiny_cnn", "--batch", "1"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("ONNX Runtime library not found")
            && e.contains("/nonexistent/libonnxruntime.so"),
        "{e}"
    );
    assert!(!e.contains("panicked"), "{e}");

    // Not a library at all.
    let env = Env::new(&fixture_models().join("manifest.toml"), "");
    let o = env.run("run", &["--models", "tiny_cnn", "--batch", "1"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("cannot load ONNX Runtime from"), "{e}");
    assert!(!e.contains("panicked"), "{e}");
}

#[test]
fn models_lists_presence_size_and_checksum() {
    let env = Env::new(&ort_lib(), "");
    let o = env.run("models", &["--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = json_lines(&stdout(&o));
    let tiny = rows.iter().find(|r| r["name"] == "tiny_cnn").unwrap();
    assert_eq!(tiny["present"], true);
    assert_eq!(tiny["sha256"], "ok");
    assert!(tiny["size_bytes"].as_u64().unwrap() > 0);
    let gone = rows.iter().find(|r| r["name"] == "missing_model").unwrap();
    assert_eq!(gone["present"], false);
    assert_eq!(gone["sha256"], "missing");
    let o = env.run("models", &[]);
    assert!(stdout(&o).contains("tiny_cnn") && stdout(&o).contains("missing"));
}

#[test]
fn generate_config_round_trips_through_check_config() {
    let o = std::process::Command::new(bin())
        .arg("generate-config")
        .output()
        .unwrap();
    assert!(o.status.success());
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("g.toml");
    std::fs::write(&p, &o.stdout).unwrap();
    let mut c = std::process::Command::new(bin());
    c.current_dir(d.path())
        .args(["check-config", "--config"])
        .arg(&p);
    scrub(&mut c);
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("configuration OK"));
}

#[test]
fn report_reprints_the_table() {
    let env = Env::new(&ort_lib(), "");
    let out = env.path("r.jsonl");
    let o = env.run(
        "run",
        &[
            "--models",
            "tiny_cnn",
            "--batch",
            "1,2",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = std::process::Command::new(bin())
        .arg("report")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(stdout(&o).contains("knee  tiny_cnn"), "{}", stdout(&o));
    std::fs::write(&out, "{\"record\":\"result\",\"schema\":\"x\"}\n").unwrap();
    let o = std::process::Command::new(bin())
        .arg("report")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("r.jsonl:1"), "{}", stderr(&o));
}
