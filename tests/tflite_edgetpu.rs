//! The Edge TPU branch of the TFLite backend. No machine here has an Edge TPU, so
//! libedgetpu is a stand-in built from `tests/fixtures/tflite/edgetpu_standin.c`; the
//! TensorFlow Lite library and its delegate machinery are the real ones.
//! Failure paths: library absent, no device, no matching device, delegate refused,
//! delegate failing to prepare. Success path: the stand-in delegate claims the
//! `edgetpu-custom-op` nodes and counts its invocations.

mod tflite_common;

use std::path::{Path, PathBuf};

use edgebench::backend::tflite::{probe_info, TfliteBackend};
use edgebench::backend::{Backend, BackendError, BatchMode, Session};
use tflite_common::*;

fn extra(s: &dyn Session, key: &str) -> Option<serde_json::Value> {
    s.extra_fields()
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// An all-Edge-TPU model (one `edgetpu-custom-op`) and a mixed one (plus a RELU on the
/// CPU), float32 [1, 8].
fn models(dir: &Path) -> (PathBuf, PathBuf) {
    let all = write_model(
        dir,
        "all_edgetpu.tflite",
        &tflite_model(&[1, 8], 2, vec![edgetpu_op(0, 1)]),
    );
    let mixed = write_model(
        dir,
        "mixed_edgetpu.tflite",
        &tflite_model(&[1, 8], 3, vec![edgetpu_op(0, 1), relu_op(1, 2)]),
    );
    (all, mixed)
}

#[test]
fn library_absent_is_a_per_run_unsupported_error() {
    let Some(a) = assets() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (all, _) = models(dir.path());
    let absent = dir.path().join("libedgetpu.so.1");
    let b = TfliteBackend::load(&config(&a, &absent)).unwrap();
    let e = b.open(&spec(&all, "edgetpu", 1)).err().unwrap();
    assert!(matches!(e, BackendError::Unsupported(_)), "{e:?}");
    let e = e.to_string();
    assert!(e.contains("libedgetpu.so.1 not found"), "{e}");
    assert!(
        e.contains(&format!("{} (not found)", absent.display())),
        "{e}"
    );
    // The backend keeps working for CPU models.
    assert_eq!(b.providers(), vec!["cpu".to_string()]);
    let mut s = b.open(&spec(&a.blazeface, "cpu", 1)).unwrap();
    s.run().unwrap();
}

#[test]
fn no_device_is_a_per_run_unsupported_error() {
    let Some(a) = assets() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (all, _) = models(dir.path());
    let (_keep, lib) = standin(0);
    let b = TfliteBackend::load(&config(&a, &lib)).unwrap();
    let e = b.open(&spec(&all, "edgetpu", 1)).err().unwrap();
    assert!(matches!(e, BackendError::Unsupported(_)), "{e:?}");
    let e = e.to_string();
    assert!(e.contains("lists no Edge TPU device"), "{e}");
    assert!(e.contains(&lib.display().to_string()), "{e}");
    assert_eq!(b.providers(), vec!["cpu".to_string()]);

    let info = probe_info(&config(&a, &lib));
    assert_eq!(info["tflite_providers"], "cpu");
    assert_eq!(info["edgetpu_devices"], "");
    assert_eq!(
        info["edgetpu_version"],
        "stand-in libedgetpu (edgebench tests)"
    );
    assert!(info["edgetpu_error"]
        .as_str()
        .unwrap()
        .contains("lists no Edge TPU device"));
}

#[test]
fn delegate_creation_failing_names_the_device() {
    let Some(a) = assets() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (all, _) = models(dir.path());
    let (_keep, lib) = standin(1);
    let b = TfliteBackend::load(&config(&a, &lib)).unwrap();
    // The device is listed, so the delegate is offered ...
    assert_eq!(
        b.providers(),
        vec!["cpu".to_string(), "edgetpu".to_string()]
    );
    // ... but creating it fails.
    let e = b.open(&spec(&all, "edgetpu", 1)).err().unwrap();
    assert!(matches!(e, BackendError::Failed(_)), "{e:?}");
    let e = e.to_string();
    assert!(
        e.contains("edgetpu_create_delegate failed for usb /sys/bus/usb/devices/2-1"),
        "{e}"
    );
    assert!(e.contains(&lib.display().to_string()), "{e}");
    let probe = StandinProbe::open(&lib);
    assert_eq!(probe.device_lists_alive(), 0, "device list freed");
}

#[test]
fn delegate_failing_to_prepare_is_reported_with_tflite_message() {
    let Some(a) = assets() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (all, _) = models(dir.path());
    let (_keep, lib) = standin(2);
    let b = TfliteBackend::load(&config(&a, &lib)).unwrap();
    let e = b.open(&spec(&all, "edgetpu", 1)).err().unwrap();
    assert!(matches!(e, BackendError::Failed(_)), "{e:?}");
    let e = e.to_string();
    assert!(
        e.contains("applying the Edge TPU delegate (pci /dev/apex_0)"),
        "{e}"
    );
    assert!(
        e.contains("stand-in: Edge TPU /dev/apex_0 is not responding"),
        "TFLite's own message is kept: {e}"
    );
    let probe = StandinProbe::open(&lib);
    assert_eq!(
        probe.delegates_alive(),
        0,
        "delegate freed after the failure"
    );
}

#[test]
fn device_selection_by_type_and_index() {
    let Some(a) = assets() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (all, _) = models(dir.path());
    let (_keep, lib) = standin(3); // pci /dev/apex_0, usb /sys/bus/usb/devices/2-1
    let info = probe_info(&config(&a, &lib));
    assert_eq!(info["tflite_providers"], "cpu,edgetpu");
    assert_eq!(
        info["edgetpu_devices"],
        "pci /dev/apex_0,usb /sys/bus/usb/devices/2-1"
    );
    assert!(info.get("edgetpu_error").is_none());
    let open = |sel: &str| {
        let mut c = config(&a, &lib);
        c.tflite.edgetpu_device = sel.into();
        TfliteBackend::load(&c)
            .unwrap()
            .open(&spec(&all, "edgetpu", 1))
    };
    let dev = |sel: &str| extra(&*open(sel).unwrap(), "edgetpu_device").unwrap();
    assert_eq!(dev(""), "/dev/apex_0");
    assert_eq!(dev("usb"), "/sys/bus/usb/devices/2-1");
    assert_eq!(dev("pci:0"), "/dev/apex_0");
    assert_eq!(dev("1"), "/sys/bus/usb/devices/2-1");
    let e = open("usb:1").err().unwrap();
    assert!(matches!(e, BackendError::Unsupported(_)));
    let e = e.to_string();
    assert!(e.contains("no usb Edge TPU #1"), "{e}");
    assert!(
        e.contains("pci /dev/apex_0, usb /sys/bus/usb/devices/2-1"),
        "{e}"
    );
    let e = open("tpu").err().unwrap().to_string();
    assert!(e.contains("tflite.edgetpu_device `tpu`"), "{e}");
}

#[test]
fn edgetpu_run_is_sequential_and_records_op_mapping() {
    let Some(a) = assets() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (all, mixed) = models(dir.path());
    let (_keep, lib) = standin(3);
    let probe = StandinProbe::open(&lib);
    let b = TfliteBackend::load(&config(&a, &lib)).unwrap();

    let mut s = b.open(&spec(&all, "edgetpu", 4)).unwrap();
    assert_eq!(s.ep_used(), "edgetpu");
    assert_eq!(s.batch_mode(), BatchMode::Sequential);
    assert_eq!(s.input_shape(), vec![1, 8]);
    assert_eq!(extra(&*s, "tflite_invokes_per_batch"), Some(4.into()));
    assert_eq!(extra(&*s, "tflite_delegate"), Some("edgetpu".into()));
    assert_eq!(extra(&*s, "edgetpu_device_type"), Some("pci".into()));
    assert_eq!(extra(&*s, "edgetpu_compiled"), Some(true.into()));
    assert_eq!(extra(&*s, "edgetpu_all_ops_mapped"), Some(true.into()));
    assert_eq!(extra(&*s, "edgetpu_cpu_ops"), Some(0.into()));
    assert_eq!(
        probe.invokes(),
        4,
        "opening runs (and times) the first batch"
    );
    assert!(s.first_run_ms().is_some());
    s.run().unwrap();
    assert_eq!(
        probe.invokes(),
        8,
        "batch 4 = 4 invokes through the delegate"
    );
    s.run().unwrap();
    assert_eq!(probe.invokes(), 12);

    let m = b.open(&spec(&mixed, "edgetpu", 1)).unwrap();
    assert_eq!(m.batch_mode(), BatchMode::Native);
    assert_eq!(extra(&*m, "edgetpu_all_ops_mapped"), Some(false.into()));
    assert_eq!(extra(&*m, "edgetpu_ops"), Some(1.into()));
    assert_eq!(extra(&*m, "edgetpu_cpu_ops"), Some(1.into()));
    drop(m);

    assert_eq!(probe.delegates_alive(), 1);
    drop(s);
    assert_eq!(probe.delegates_alive(), 0);
    assert_eq!(probe.device_lists_alive(), 0);
    // Each session: the interpreter (and with it the delegate kernel) goes before the
    // delegate it used.
    assert_eq!(
        probe.log(),
        "create_delegate,kernel_init,create_delegate,kernel_init,kernel_free,free_delegate,kernel_free,free_delegate,"
    );
}
