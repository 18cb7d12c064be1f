//! TFLite backend on the CPU, with the real TensorFlow Lite 2.6 C library and real
//! models (BlazeFace float32, MNIST uint8), fetched by `scripts/fetch-tflite.sh`.

mod tflite_common;

use std::path::Path;

use edgebench::backend::tflite::{model, probe_info, TfliteBackend};
use edgebench::backend::{Backend, BackendError, BatchMode, Session};
use tflite_common::*;

fn extra(s: &dyn Session, key: &str) -> Option<serde_json::Value> {
    s.extra_fields()
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

fn backend(a: &Assets) -> TfliteBackend {
    TfliteBackend::load(&config(a, Path::new("/nonexistent/libedgetpu.so.1")))
        .expect("load the fetched TFLite library")
}

#[test]
fn loads_the_library_and_reports_version_and_providers() {
    let Some(a) = assets() else { return };
    let b = backend(&a);
    assert_eq!(b.name(), "tflite");
    assert_eq!(b.runtime(), "tflite");
    assert_eq!(b.runtime_version(), "2.6.0");
    assert_eq!(b.providers(), vec!["cpu".to_string()]);
    assert_eq!(b.library_path(), a.library.as_path());
}

#[test]
fn missing_or_wrong_library_is_a_clear_error() {
    let mut c = edgebench::config::Config::default();
    c.tflite.library = "/nonexistent/dir/libtensorflowlite_c.so".into();
    let Err(BackendError::Library(e)) = TfliteBackend::load(&c) else {
        panic!("expected a Library error")
    };
    assert!(
        e.contains("/nonexistent/dir/libtensorflowlite_c.so (not found)"),
        "{e}"
    );

    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("libtensorflowlite_c.so");
    std::fs::write(&junk, "not a library").unwrap();
    c.tflite.library = junk.display().to_string();
    let Err(BackendError::Library(e)) = TfliteBackend::load(&c) else {
        panic!("expected a Library error")
    };
    assert!(e.contains(&junk.display().to_string()), "{e}");

    // A real shared library that is not TFLite: the missing symbol is named.
    let libm = [
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/lib/aarch64-linux-gnu/libm.so.6",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists());
    if let Some(libm) = libm {
        c.tflite.library = libm.into();
        let Err(BackendError::Library(e)) = TfliteBackend::load(&c) else {
            panic!("expected a Library error")
        };
        assert!(e.contains("symbol TfLiteVersion missing"), "{e}");
    } else if std::env::var_os("EDGEBENCH_REQUIRE_TFLITE").is_some() {
        panic!(
            "no libm.so.6 found to load as a non-TFLite library (EDGEBENCH_REQUIRE_TFLITE is set)"
        );
    }
}

#[test]
fn blazeface_runs_and_outputs_follow_the_seed() {
    let Some(a) = assets() else { return };
    let b = backend(&a);
    let outputs = |seed: u64| {
        let mut sp = spec(&a.blazeface, "cpu", 1);
        sp.seed = seed;
        let mut s = b.open_session(&sp).expect("open BlazeFace");
        assert_eq!(s.batch_mode(), BatchMode::Native);
        assert_eq!(s.input_shape(), vec![1, 128, 128, 3]);
        assert_eq!(s.ep_used(), "cpu");
        s.run().expect("invoke");
        s.read_outputs().expect("read outputs");
        assert_eq!(s.output_count(), 2);
        (0..s.output_count())
            .map(|i| s.output(i).unwrap().to_vec())
            .collect::<Vec<_>>()
    };
    let first = outputs(42);
    // Regressors [1,896,16] and classificators [1,896,1], float32.
    assert_eq!(first[0].len(), 896 * 16 * 4);
    assert_eq!(first[1].len(), 896 * 4);
    let floats: Vec<f32> = first[0]
        .chunks_exact(4)
        .map(|c| f32::from_ne_bytes(c.try_into().unwrap()))
        .collect();
    assert!(floats.iter().all(|v| v.is_finite()));
    assert!(floats.iter().any(|&v| v != 0.0), "outputs never written");
    assert_eq!(first, outputs(42), "same seed, same input, same output");
    assert_ne!(first, outputs(7), "another seed feeds another input");
}

#[test]
fn blazeface_batch_is_resized_natively() {
    let Some(a) = assets() else { return };
    let b = backend(&a);
    let mut s = b.open_session(&spec(&a.blazeface, "cpu", 4)).expect("open");
    assert_eq!(s.batch_mode(), BatchMode::Native);
    assert_eq!(s.input_shape(), vec![4, 128, 128, 3]);
    assert_eq!(extra(&s, "tflite_invokes_per_batch"), Some(1.into()));
    assert_eq!(extra(&s, "tflite_resize_error"), None);
    s.run().expect("invoke batch 4");
    s.read_outputs().expect("read outputs");
    assert_eq!(s.output(0).unwrap().len(), 4 * 896 * 16 * 4);
}

/// The timed call only invokes: outputs are copied out by `read_outputs`, after the
/// timed region, as ONNX Runtime's bound outputs need no copy at all.
#[test]
fn run_does_not_copy_outputs_read_outputs_does() {
    let Some(a) = assets() else { return };
    let b = backend(&a);
    let mut s = b.open_session(&spec(&a.blazeface, "cpu", 1)).expect("open");
    s.run().expect("invoke");
    assert!(
        s.output(0).unwrap().iter().all(|&x| x == 0),
        "run() copied outputs inside the timed call"
    );
    s.read_outputs().expect("read outputs");
    assert!(s.output(0).unwrap().iter().any(|&x| x != 0));
}

/// TFLite accepts resizing the first input, but the output comes from a second input
/// that keeps its size: batch 2 "natively" would time one sample's work. Refused; the
/// batch runs as 2 invokes and the record says why.
#[test]
fn resize_whose_outputs_do_not_grow_runs_sequentially() {
    let Some(a) = assets() else { return };
    let b = backend(&a);
    let dir = tempfile::tempdir().unwrap();
    let m = write_model(
        dir.path(),
        "fixed_out.tflite",
        &tflite_model_io(
            &[vec![1, 4], vec![3, 4], vec![3, 4]],
            vec![0, 1],
            vec![2],
            vec![relu_op(1, 2)],
        ),
    );
    let s = b.open_session(&spec(&m, "cpu", 2)).expect("open");
    assert_eq!(s.batch_mode(), BatchMode::Sequential);
    assert_eq!(extra(&s, "tflite_invokes_per_batch"), Some(2.into()));
    let why = extra(&s, "tflite_resize_error").expect("refusal recorded");
    assert!(
        why.as_str().unwrap().contains("does not carry the batch"),
        "{why}"
    );
}

/// The batch comes from the model's dims signature: `[1, 8]` (fixed at export) is not
/// resized even though TFLite would accept it; `[-1, 8]` (dynamic) is.
#[test]
fn dims_signature_decides_whether_the_batch_is_resized() {
    let Some(a) = assets() else { return };
    let b = backend(&a);
    let dir = tempfile::tempdir().unwrap();
    let model = |name: &str, sig: i32| {
        write_model(
            dir.path(),
            name,
            &tflite_model_sig(
                &[vec![1, 8], vec![1, 8]],
                &[vec![sig, 8], vec![sig, 8]],
                vec![0],
                vec![1],
                vec![relu_op(0, 1)],
            ),
        )
    };
    let fixed = b
        .open_session(&spec(&model("fixed.tflite", 1), "cpu", 4))
        .expect("open fixed");
    assert_eq!(fixed.batch_mode(), BatchMode::Sequential);
    assert_eq!(fixed.batch_per_call(), 1);
    assert_eq!(
        extra(&fixed, "tflite_batch_signature"),
        Some("fixed".into())
    );
    let why = extra(&fixed, "tflite_resize_error").unwrap();
    assert!(why.as_str().unwrap().contains("shape_signature"), "{why}");
    let dynamic = b
        .open_session(&spec(&model("dynamic.tflite", -1), "cpu", 4))
        .expect("open dynamic");
    assert_eq!(dynamic.batch_mode(), BatchMode::Native);
    assert_eq!(dynamic.input_shape(), vec![4, 8]);
    assert_eq!(dynamic.batch_per_call(), 4);
    assert_eq!(
        extra(&dynamic, "tflite_batch_signature"),
        Some("dynamic".into())
    );
    // No signature (older converters): resized when TFLite accepts it, as before.
    let plain = b
        .open_session(&spec(
            &write_model(
                dir.path(),
                "plain.tflite",
                &tflite_model(&[1, 8], 2, vec![relu_op(0, 1)]),
            ),
            "cpu",
            4,
        ))
        .expect("open plain");
    assert_eq!(plain.batch_mode(), BatchMode::Native);
    assert_eq!(
        extra(&plain, "tflite_batch_signature"),
        Some("absent".into())
    );
}

/// `[protocol] fixed_batch = "fail"`: a fixed-batch model that refuses the resize
/// fails instead of running sequential invokes.
#[test]
fn mnist_fixed_batch_fail_is_refused() {
    let Some(a) = assets() else { return };
    let b = backend(&a);
    let mut sp = spec(&a.mnist, "cpu", 3);
    sp.fixed_batch = edgebench::backend::FixedBatch::Fail;
    let Err(BackendError::Failed(e)) = b.open_session(&sp) else {
        panic!("batch 3 of a fixed batch-1 model must fail with fixed_batch = fail")
    };
    assert!(e.contains("fixed to 1") && e.contains("fixed_batch"), "{e}");
    // Its own batch still runs.
    sp.batch = 1;
    b.open_session(&sp).expect("batch 1");
}

/// A batch whose buffers do not fit in MemAvailable (under the injected root) is
/// refused before TFLite allocates.
#[test]
fn batch_beyond_available_memory_is_refused() {
    let Some(a) = assets() else { return };
    let b = backend(&a);
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("proc")).unwrap();
    std::fs::write(
        root.path().join("proc/meminfo"),
        "MemAvailable: 4096 kB
",
    )
    .unwrap();
    let mut sp = spec(&a.blazeface, "cpu", 64);
    sp.mem_root = Some(root.path().to_path_buf());
    let Err(BackendError::Failed(e)) = b.open_session(&sp) else {
        panic!("64 x 196 KiB of BlazeFace input must not fit in 4 MiB")
    };
    assert!(
        e.contains("out of memory") && e.contains("MemAvailable 4 MiB"),
        "{e}"
    );
    sp.batch = 1;
    b.open_session(&sp).expect("batch 1 fits");
}

#[test]
fn mnist_has_a_fixed_batch_and_runs_sequentially() {
    let Some(a) = assets() else { return };
    let b = backend(&a);
    let mut s = b.open_session(&spec(&a.mnist, "cpu", 3)).expect("open");
    assert_eq!(s.batch_mode(), BatchMode::Sequential);
    assert_eq!(s.input_shape(), vec![1, 28, 28, 1]);
    assert_eq!(extra(&s, "tflite_invokes_per_batch"), Some(3.into()));
    let why = extra(&s, "tflite_resize_error").expect("resize refusal recorded");
    assert!(why.as_str().unwrap().contains("RESHAPE"), "{why}");
    s.run().expect("3 invokes");
}

#[test]
fn mnist_predicts_the_digits() {
    let Some(a) = assets() else { return };
    let b = backend(&a);
    let digits = std::fs::read(&a.mnist_digits).unwrap();
    assert_eq!(digits.len(), 10 * 28 * 28);
    let mut s = b.open_session(&spec(&a.mnist, "cpu", 1)).expect("open");
    assert_eq!(s.batch_mode(), BatchMode::Native);
    for (digit, image) in digits.chunks_exact(28 * 28).enumerate() {
        s.set_input(0, image).unwrap();
        s.run().unwrap();
        s.read_outputs().unwrap();
        let scores = s.output(0).unwrap();
        let best = (0..scores.len()).max_by_key(|&i| scores[i]).unwrap();
        assert_eq!(best, digit, "scores {scores:?}");
    }
    assert!(s.set_input(0, &digits[..10]).is_err(), "wrong size refused");
}

#[test]
fn fields_describe_the_run() {
    let Some(a) = assets() else { return };
    let b = backend(&a);
    let mut sp = spec(&a.blazeface, "cpu", 1);
    sp.threads = 2;
    let s = b.open(&sp).unwrap();
    assert_eq!(extra(&*s, "tflite_delegate"), Some("none".into()));
    assert_eq!(extra(&*s, "tflite_threads"), Some(2.into()));
    assert_eq!(extra(&*s, "edgetpu_compiled"), Some(false.into()));
    assert_eq!(extra(&*s, "edgetpu_all_ops_mapped"), None);
    let ops = extra(&*s, "tflite_ops").unwrap().as_u64().unwrap();
    assert!(ops > 10, "BlazeFace has dozens of ops, got {ops}");
    sp.threads = 0;
    let s = b.open(&sp).unwrap();
    assert_eq!(extra(&*s, "tflite_threads"), Some((-1).into()));
}

#[test]
fn bad_requests_fail_clearly() {
    let Some(a) = assets() else { return };
    let b = backend(&a);
    let e = b.open(&spec(&a.blazeface, "cuda", 1)).err().unwrap();
    assert!(matches!(e, BackendError::Unsupported(_)));
    assert!(e.to_string().contains("no delegate `cuda`"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.tflite");
    let e = b.open(&spec(&missing, "cpu", 1)).err().unwrap().to_string();
    assert!(e.contains(&missing.display().to_string()), "{e}");

    let onnx = write_model(dir.path(), "m.tflite", b"\x08\0\0\0ONNX-not-tflite");
    let e = b.open(&spec(&onnx, "cpu", 1)).err().unwrap().to_string();
    assert!(
        e.contains("not a TFLite model") && e.contains("m.tflite"),
        "{e}"
    );

    // An Edge-TPU-compiled graph on the CPU, and a CPU model with the Edge TPU delegate.
    let tpu = write_model(
        dir.path(),
        "net_edgetpu.tflite",
        &tflite_model(&[1, 8], 2, vec![edgetpu_op(0, 1)]),
    );
    let e = b.open(&spec(&tpu, "cpu", 1)).err().unwrap().to_string();
    assert!(e.contains("compiled for the Edge TPU"), "{e}");
    let e = b
        .open(&spec(&a.blazeface, "edgetpu", 1))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("not compiled for the Edge TPU"), "{e}");
}

#[test]
fn batch_not_a_multiple_of_a_fixed_batch_fails() {
    let Some(a) = assets() else { return };
    let dir = tempfile::tempdir().unwrap();
    // Fixed batch 2 (an Edge-TPU-style model is never resized), asked for batch 3.
    let m = write_model(
        dir.path(),
        "two_edgetpu.tflite",
        &tflite_model(&[2, 8], 2, vec![edgetpu_op(0, 1)]),
    );
    let (_d, lib) = standin(3);
    let b3 = TfliteBackend::load(&config(&a, &lib)).unwrap();
    let e = b3.open(&spec(&m, "edgetpu", 3)).err().unwrap().to_string();
    assert!(
        e.contains("fixed batch of 2") && e.contains("batch 3"),
        "{e}"
    );
    let s = b3.open(&spec(&m, "edgetpu", 4)).unwrap();
    assert_eq!(s.batch_mode(), BatchMode::Sequential);
    assert_eq!(extra(&*s, "tflite_invokes_per_batch"), Some(2.into()));
}

#[test]
fn graph_summary_of_real_and_synthetic_models() {
    let Some(a) = assets() else { return };
    let g = model::summarize(&std::fs::read(&a.blazeface).unwrap()).unwrap();
    assert!(!g.edgetpu_compiled());
    assert!(g.ops > 10);
    assert!(g.custom_ops.is_empty(), "{:?}", g.custom_ops);

    let mixed = tflite_model(&[1, 8], 3, vec![edgetpu_op(0, 1), relu_op(1, 2)]);
    let g = model::summarize(&mixed).unwrap();
    assert_eq!((g.ops, g.edgetpu_ops, g.cpu_ops()), (2, 1, 1));
    assert_eq!(g.custom_ops, vec!["edgetpu-custom-op".to_string()]);
    // Every truncation of a valid model is an error, never a panic.
    for n in 0..mixed.len() {
        let _ = model::summarize(&mixed[..n]);
    }
}

#[test]
fn info_lists_runtime_and_delegates() {
    let Some(a) = assets() else { return };
    let m = probe_info(&config(&a, Path::new("/nonexistent/libedgetpu.so.1")));
    assert_eq!(m["tflite_runtime"], "tflite");
    assert_eq!(m["tflite_version"], "2.6.0");
    assert_eq!(m["tflite_providers"], "cpu");
    assert_eq!(m["tflite_library"], a.library.display().to_string());
    let why = m["edgetpu_error"].as_str().unwrap();
    assert!(
        why.contains("/nonexistent/libedgetpu.so.1 (not found)"),
        "{why}"
    );
    assert!(m.values().all(|v| v.is_string()), "flat strings: {m:?}");

    let mut c = edgebench::config::Config::default();
    c.tflite.library = "/nonexistent/libtensorflowlite_c.so".into();
    let m = probe_info(&c);
    assert!(m.get("tflite_version").is_none());
    assert!(m["tflite_error"].as_str().unwrap().contains("not found"));
}
