//! The timed call allocates nothing on edgebench's side: a counting global allocator
//! watches `Session::run` on a real ONNX Runtime session (ONNX Runtime's own C++
//! allocations are outside Rust's allocator and are what any application pays).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

#[test]
fn ort_session_run_allocates_nothing_in_rust() {
    let mut cfg = edgebench::config::Config::default();
    cfg.onnxruntime.library = common::ort_lib().display().to_string();
    let backend = edgebench::backend::load("ort", &cfg).expect("load ONNX Runtime");
    let spec = edgebench::backend::SessionSpec {
        model_path: common::fixture_models().join("tiny_cnn.onnx"),
        input_name: "input".into(),
        input_shape: vec![-1, 3, 32, 32],
        input_dtype: "float32".into(),
        batch: 4,
        ep: "cpu".into(),
        precision: "fp32".into(),
        threads: 1,
        seed: 1,
    };
    let mut s = backend.open(&spec).expect("open session");
    for _ in 0..5 {
        s.run().expect("warm-up");
    }
    let mut lat = Vec::with_capacity(100);
    let before = ALLOCS.load(Ordering::Relaxed);
    for _ in 0..100 {
        let t = std::time::Instant::now();
        s.run().expect("run");
        lat.push(t.elapsed().as_secs_f64());
    }
    let after = ALLOCS.load(Ordering::Relaxed);
    assert_eq!(after - before, 0, "allocations inside the timed loop");
    assert_eq!(lat.len(), 100);
}
