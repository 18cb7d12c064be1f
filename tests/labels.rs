//! Records say what ran: the batch each call really took, the precision the model file
//! and runtime flags allow, and a failed record (never an abort) for a batch that does
//! not fit in memory. Real ONNX Runtime, committed fixture models.

mod common;
use common::*;

fn run_json(env: &Env, args: &[&str]) -> Vec<serde_json::Value> {
    let mut a = vec!["--threads", "1", "--json", "--out", "/dev/null"];
    a.extend_from_slice(args);
    let o = env.run("run", &a);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    json_lines(&stdout(&o))
        .into_iter()
        .filter(|r| r["record"] == "result")
        .collect()
}

fn at_batch(res: &[serde_json::Value], model: &str, batch: u64) -> serde_json::Value {
    res.iter()
        .find(|r| r["model"] == model && r["batch"] == batch)
        .unwrap_or_else(|| panic!("no {model} batch {batch} in {res:?}"))
        .clone()
}

/// tiny_cnn_b1's batch axis is fixed to 1 (manifest and model say [1, 3, 32, 32]).
/// Batch 4 must be 4 calls of batch 1, labelled so, not one call of batch 1 recorded as
/// batch 4.
#[test]
fn fixed_batch_model_runs_sequential_calls_and_says_so() {
    let env = Env::new(&ort_lib(), "");
    let res = run_json(
        &env,
        &["--models", "tiny_cnn_b1,tiny_cnn", "--batch", "1,4"],
    );
    let b4 = at_batch(&res, "tiny_cnn_b1", 4);
    assert_eq!(b4["status"], "ok", "{b4}");
    assert_eq!(b4["batch_mode"], "sequential", "{b4}");
    assert_eq!(b4["batch_per_call"], 1, "{b4}");
    assert_eq!(b4["input_shape"], "1x3x32x32", "{b4}");
    let b1 = at_batch(&res, "tiny_cnn_b1", 1);
    assert_eq!(b1["batch_mode"], "native", "{b1}");
    assert_eq!(b1["batch_per_call"], 1, "{b1}");
    // Four calls take clearly longer than one (the fastest run of each, the least noisy
    // statistic): a batch-4 record timing one call would be about 1x.
    let min = |r: &serde_json::Value| r["latency_ms_min"].as_f64().unwrap();
    assert!(
        min(&b4) > 2.0 * min(&b1),
        "batch 4 min {} ms vs batch 1 min {} ms",
        min(&b4),
        min(&b1)
    );
    // The dynamic model still takes the whole batch in one call.
    let d4 = at_batch(&res, "tiny_cnn", 4);
    assert_eq!(d4["batch_mode"], "native", "{d4}");
    assert_eq!(d4["batch_per_call"], 4, "{d4}");
    assert_eq!(d4["input_shape"], "4x3x32x32", "{d4}");
}

#[test]
fn fixed_batch_fail_refuses_with_a_clear_error() {
    let env = Env::new(&ort_lib(), "fixed_batch = \"fail\"");
    let res = run_json(&env, &["--models", "tiny_cnn_b1", "--batch", "1,4"]);
    let b4 = at_batch(&res, "tiny_cnn_b1", 4);
    assert_eq!(b4["status"], "failed", "{b4}");
    let e = b4["error"].as_str().unwrap();
    assert!(
        e.contains("fixed to 1") && e.contains("fixed_batch") && e.contains("tiny_cnn_b1"),
        "{e}"
    );
    assert_eq!(at_batch(&res, "tiny_cnn_b1", 1)["status"], "ok");
}

#[test]
fn bad_fixed_batch_value_names_the_key() {
    let env = Env::new(&ort_lib(), "fixed_batch = \"parallel\"");
    let o = env.run("run", &["--models", "tiny_cnn", "--batch", "1"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("fixed_batch `parallel`"),
        "{}",
        stderr(&o)
    );
}

/// fp16 on the CPU provider would run the fp32 file: refused, and the record keeps
/// what was asked. fp32 records carry both keys.
#[test]
fn fp16_on_cpu_is_refused_and_fp32_is_labelled() {
    let env = Env::new(&ort_lib(), "");
    let res = run_json(
        &env,
        &[
            "--models",
            "tiny_cnn",
            "--batch",
            "1",
            "--precision",
            "fp32,fp16",
        ],
    );
    let fp16 = res
        .iter()
        .find(|r| r["precision_requested"] == "fp16")
        .expect("fp16 record");
    assert_eq!(fp16["status"], "failed", "{fp16}");
    let e = fp16["error"].as_str().unwrap();
    assert!(
        e.contains("fp16") && e.contains("tensorrt") && e.contains("ort/cpu"),
        "{e}"
    );
    let fp32 = res
        .iter()
        .find(|r| r["precision_requested"] == "fp32")
        .expect("fp32 record");
    assert_eq!(fp32["status"], "ok", "{fp32}");
    assert_eq!(fp32["precision"], "fp32");
    // The CPU provider never gets a partial-fall-back label.
    assert!(fp32.get("ort_cpu_fallback").is_none(), "{fp32}");
}

/// A batch whose buffers exceed MemAvailable (read under the injected root) fails its
/// record before anything is allocated; the sweep goes on.
#[test]
fn batch_too_large_for_memory_fails_the_record_not_the_process() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("proc")).unwrap();
    // 2 MiB available: batch 1 (12 KiB in, 40 B out) fits, batch 4096 (48 MiB) does not.
    std::fs::write(
        root.path().join("proc/meminfo"),
        "MemTotal: 4096 kB\nMemAvailable: 2048 kB\n",
    )
    .unwrap();
    let env = Env::new(
        &ort_lib(),
        &format!("[telemetry]\nsysroot = \"{}\"", root.path().display()),
    );
    let res = run_json(&env, &["--models", "tiny_cnn", "--batch", "4096,1"]);
    let big = at_batch(&res, "tiny_cnn", 4096);
    assert_eq!(big["status"], "failed", "{big}");
    let e = big["error"].as_str().unwrap();
    assert!(
        e.contains("out of memory") && e.contains("MemAvailable 2 MiB") && e.contains("meminfo"),
        "{e}"
    );
    assert_eq!(at_batch(&res, "tiny_cnn", 1)["status"], "ok");
}

/// Host io is the default and says what the timed call copies (nothing on the CPU).
/// `io = "device"` needs CUDA device memory: without the CUDA provider (no GPU here)
/// the run fails and says why, up to the provider boundary.
#[test]
fn io_is_recorded_and_device_io_needs_cuda() {
    let env = Env::new(&ort_lib(), "");
    let res = run_json(&env, &["--models", "tiny_cnn", "--batch", "1"]);
    assert_eq!(res[0]["io"], "host", "{}", res[0]);
    assert_eq!(res[0]["io_timed_copies"], "none", "{}", res[0]);
    assert!(res[0].get("h2d_ms").is_none());

    let res = run_json(
        &env,
        &[
            "--models",
            "tiny_cnn",
            "--batch",
            "1",
            "--set",
            "onnxruntime.io=device",
        ],
    );
    assert_eq!(res[0]["status"], "failed", "{}", res[0]);
    let e = res[0]["error"].as_str().unwrap();
    assert!(
        e.contains("io = \"device\"") && e.contains("cuda") && e.contains("`cpu`"),
        "{e}"
    );

    // Requested cuda, fallen back to the CPU: still refused, the fall-back named.
    let res = run_json(
        &env,
        &[
            "--models",
            "tiny_cnn",
            "--batch",
            "1",
            "--ep",
            "cuda",
            "--set",
            "onnxruntime.io=device",
            "--set",
            "onnxruntime.allow_fallback=true",
        ],
    );
    let e = res[0]["error"].as_str().unwrap_or_default();
    assert_eq!(res[0]["status"], "failed", "{}", res[0]);
    assert!(
        e.contains("io = \"device\"") && e.contains("not in this ONNX Runtime build"),
        "{e}"
    );

    let o = env.run(
        "run",
        &["--models", "tiny_cnn", "--set", "onnxruntime.io=gpu"],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("onnxruntime.io"), "{}", stderr(&o));
}

/// ONNX Runtime 1.24+ reports where each node was placed: on the CPU provider all of
/// them. An older library (1.19) cannot tell, and the keys are simply absent.
#[test]
fn node_placement_is_recorded_when_the_runtime_reports_it() {
    let env = Env::new(&ort_lib(), "");
    let res = run_json(&env, &["--models", "tiny_cnn", "--batch", "1"]);
    let r = &res[0];
    let total = r["ort_nodes"]
        .as_u64()
        .expect("ort_nodes with ONNX Runtime 1.32");
    assert!(total > 0, "{r}");
    assert_eq!(r["ort_nodes_cpu"].as_u64(), Some(total), "{r}");
    assert_eq!(r["ort_node_providers"], format!("cpu:{total}"), "{r}");
    assert!(
        !r["warnings"].as_str().unwrap_or("").contains("cpu_nodes"),
        "{r}"
    );

    // ONNX Runtime 1.19: no keys, and it is not asked (an older library asked for API 24
    // prints an error on stderr).
    let old = Env::new(&ort_old_lib(), "");
    let o = old.run(
        "run",
        &[
            "--models",
            "tiny_cnn",
            "--batch",
            "1",
            "--json",
            "--out",
            "/dev/null",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let recs = json_lines(&stdout(&o));
    let r = results(&recs)[0];
    assert_eq!(r["status"], "ok", "{r}");
    assert!(r.get("ort_nodes").is_none(), "{r}");
    assert!(!stderr(&o).contains("API version"), "{}", stderr(&o));
}
