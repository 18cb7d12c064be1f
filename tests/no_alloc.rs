//! The timed call allocates nothing on edgebench's side: a counting global allocator
//! watches `Session::run` on a real ONNX Runtime session (ONNX Runtime's own C++
//! allocations are outside Rust's allocator and are what any application pays).

mod common;
mod counting_alloc;

#[global_allocator]
static A: counting_alloc::Counting = counting_alloc::Counting;

#[test]
fn ort_session_run_allocates_nothing_in_rust() {
    timed_loop_allocates_nothing("tiny_cnn.onnx", vec![-1, 3, 32, 32], 1);
}

/// A fixed-batch model at batch 4 runs 4 calls per timed batch, still allocation-free.
#[test]
fn ort_sequential_run_allocates_nothing_in_rust() {
    timed_loop_allocates_nothing("tiny_cnn_b1.onnx", vec![1, 3, 32, 32], 4);
}

fn timed_loop_allocates_nothing(model: &str, shape: Vec<i64>, calls: u32) {
    let mut cfg = edgebench::config::Config::default();
    cfg.onnxruntime.library = common::ort_lib().display().to_string();
    let backend = edgebench::backend::load("ort", &cfg).expect("load ONNX Runtime");
    let spec = edgebench::backend::SessionSpec {
        model_path: common::fixture_models().join(model),
        input_name: "input".into(),
        input_shape: shape,
        input_dtype: "float32".into(),
        batch: 4,
        ep: "cpu".into(),
        precision: "fp32".into(),
        threads: 1,
        seed: 1,
        ..Default::default()
    };
    let mut s = backend.open(&spec).expect("open session");
    assert_eq!(s.batch_per_call() * calls, 4, "calls per batch");
    for _ in 0..5 {
        s.run().expect("warm-up");
    }
    let mut lat = Vec::with_capacity(100);
    let before = counting_alloc::allocations();
    for _ in 0..100 {
        let t = std::time::Instant::now();
        s.run().expect("run");
        lat.push(t.elapsed().as_secs_f64());
    }
    let after = counting_alloc::allocations();
    assert_eq!(after - before, 0, "allocations inside the timed loop");
    assert_eq!(lat.len(), 100);
}
