//! The timed call allocates nothing on edgebench's side for TFLite either: a counting
//! global allocator watches `Session::run` on real TFLite sessions, native (BlazeFace
//! resized to batch 2) and sequential (MNIST, 3 invokes), and through the (stand-in)
//! Edge TPU delegate. TFLite's own C++ allocations are outside Rust's allocator.

mod counting_alloc;
mod tflite_common;

use edgebench::backend::tflite::TfliteBackend;
use edgebench::backend::{Backend, BatchMode, Session};
use tflite_common::*;

#[global_allocator]
static A: counting_alloc::Counting = counting_alloc::Counting;

fn allocations_in_runs(s: &mut dyn Session, n: usize) -> usize {
    s.run().expect("warm-up");
    let before = counting_alloc::allocations();
    for _ in 0..n {
        s.run().expect("run");
    }
    counting_alloc::allocations() - before
}

// One test: the counter is process-wide, so nothing else may run beside it.
#[test]
fn tflite_session_run_allocates_nothing_in_rust() {
    let Some(a) = assets() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (_keep, lib) = standin(3);
    let b = TfliteBackend::load(&config(&a, &lib)).expect("load TFLite");

    let mut s = b.open(&spec(&a.blazeface, "cpu", 2)).unwrap();
    assert_eq!(s.batch_mode(), BatchMode::Native);
    assert_eq!(allocations_in_runs(&mut *s, 10), 0, "BlazeFace batch 2");

    let mut s = b.open(&spec(&a.mnist, "cpu", 3)).unwrap();
    assert_eq!(s.batch_mode(), BatchMode::Sequential);
    assert_eq!(allocations_in_runs(&mut *s, 50), 0, "MNIST 3 x batch 1");

    let m = write_model(
        dir.path(),
        "t_edgetpu.tflite",
        &tflite_model(&[1, 8], 2, vec![edgetpu_op(0, 1)]),
    );
    let mut s = b.open(&spec(&m, "edgetpu", 4)).unwrap();
    assert_eq!(allocations_in_runs(&mut *s, 50), 0, "Edge TPU delegate");
    drop(s);
}
