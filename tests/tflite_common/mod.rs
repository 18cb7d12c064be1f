//! Shared by the TFLite tests: the fetched assets (skip rule), a minimal TFLite model
//! writer for graphs no package ships (Edge-TPU-compiled ones), and the stand-in
//! libedgetpu built from `tests/fixtures/tflite/edgetpu_standin.c`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use edgebench::backend::SessionSpec;
use edgebench::config::Config;

/// Files fetched by `scripts/fetch-tflite.sh`.
pub struct Assets {
    pub library: PathBuf,
    pub blazeface: PathBuf,
    pub mnist: PathBuf,
    pub mnist_digits: PathBuf,
}

/// The fetched assets, or `None` (with a loud message) when they are missing and
/// `EDGEBENCH_REQUIRE_TFLITE` is unset. With it set, missing assets fail the test.
pub fn assets() -> Option<Assets> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(".deps/tflite");
    let a = Assets {
        library: dir.join("libtensorflowlite_c.so"),
        blazeface: dir.join("models/face_detection_front.tflite"),
        mnist: dir.join("models/MNISTnet_uint8_quant.tflite"),
        mnist_digits: dir.join("models/mnist10.bin"),
    };
    let missing: Vec<String> = [&a.library, &a.blazeface, &a.mnist, &a.mnist_digits]
        .iter()
        .filter(|p| !p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if missing.is_empty() {
        return Some(a);
    }
    let msg = format!(
        "TFLite test assets missing ({}); run scripts/fetch-tflite.sh",
        missing.join(", ")
    );
    if std::env::var_os("EDGEBENCH_REQUIRE_TFLITE").is_some() {
        panic!("{msg} (EDGEBENCH_REQUIRE_TFLITE is set)");
    }
    // Straight to the process's stderr: the test harness captures eprintln!.
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "\n!!!!!!!! SKIPPED: {msg} !!!!!!!!\n");
    None
}

/// A config pointing at the fetched library; libedgetpu at `edgetpu` (a path that
/// may not exist, so the machine's own libedgetpu never leaks into a test).
pub fn config(a: &Assets, edgetpu: &Path) -> Config {
    let mut c = Config::default();
    c.tflite.library = a.library.display().to_string();
    c.tflite.edgetpu_library = edgetpu.display().to_string();
    c
}

pub fn spec(model: &Path, ep: &str, batch: u32) -> SessionSpec {
    SessionSpec {
        model_path: model.to_path_buf(),
        input_name: "input".into(),
        input_shape: vec![-1],
        input_dtype: "float32".into(),
        batch,
        ep: ep.into(),
        precision: "fp32".into(),
        threads: 1,
        seed: 42,
        ..Default::default()
    }
}

/// Builds the stand-in libedgetpu (variant 0..=3, see the C file) as
/// `<fresh temp dir>/libedgetpu.so.1`. A fresh file per call: each test gets its own
/// instance and counters.
pub fn standin(variant: u32) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("libedgetpu.so.1");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tflite/edgetpu_standin.c");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let st = Command::new(&cc)
        .args(["-shared", "-fPIC", "-O1", "-Wall", "-Werror"])
        .arg(format!("-DSTANDIN_VARIANT={variant}"))
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .status()
        .unwrap_or_else(|e| panic!("running {cc}: {e}"));
    assert!(st.success(), "{cc} failed to build the stand-in libedgetpu");
    (dir, out)
}

/// Counters of a loaded stand-in (same path: same instance).
pub struct StandinProbe {
    lib: libloading::Library,
}

impl StandinProbe {
    pub fn open(path: &Path) -> StandinProbe {
        // SAFETY: the stand-in has no initialisers.
        let lib = unsafe { libloading::Library::new(path) }.expect("open stand-in");
        StandinProbe { lib }
    }

    fn int(&self, name: &[u8]) -> i32 {
        // SAFETY: the stand-in exports these as `int`.
        unsafe { **self.lib.get::<*const i32>(name).expect("stand-in symbol") }
    }

    pub fn invokes(&self) -> i32 {
        self.int(b"standin_invokes\0")
    }
    pub fn delegates_alive(&self) -> i32 {
        self.int(b"standin_delegates_alive\0")
    }
    pub fn device_lists_alive(&self) -> i32 {
        self.int(b"standin_device_lists_alive\0")
    }
    pub fn log(&self) -> String {
        // SAFETY: a NUL-terminated char array.
        unsafe {
            let p = *self
                .lib
                .get::<*const std::ffi::c_char>(b"standin_log\0")
                .expect("log");
            std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}

// ---------------------------------------------------------------------------------------
// A minimal FlatBuffer writer for TFLite models.

/// A field value of a table.
pub enum Val {
    U8(u8),
    I32(i32),
    U32(u32),
    Str(String),
    I32s(Vec<i32>),
    Tables(Vec<Table>),
}

/// A table: `(field slot, value)` pairs.
pub struct Table(pub Vec<(u16, Val)>);

/// Serialises `root` with file identifier `ident`. Children are written after their
/// parent (uoffsets point forward); each table's vtable sits just before it.
pub fn finish(root: Table, ident: &[u8; 4]) -> Vec<u8> {
    let mut buf = vec![0u8; 8];
    buf[4..8].copy_from_slice(ident);
    let mut pending: Vec<(usize, Child)> = vec![(0, Child::Table(root))];
    while let Some((patch, child)) = pending.pop() {
        align(&mut buf, 4);
        let at = match child {
            Child::Table(t) => write_table(&mut buf, t, &mut pending),
            Child::Str(s) => {
                let at = buf.len();
                buf.extend((s.len() as u32).to_le_bytes());
                buf.extend(s.as_bytes());
                buf.push(0);
                at
            }
            Child::I32s(v) => {
                let at = buf.len();
                buf.extend((v.len() as u32).to_le_bytes());
                for x in v {
                    buf.extend(x.to_le_bytes());
                }
                at
            }
            Child::Tables(ts) => {
                let at = buf.len();
                buf.extend((ts.len() as u32).to_le_bytes());
                for t in ts {
                    pending.push((buf.len(), Child::Table(t)));
                    buf.extend([0u8; 4]);
                }
                at
            }
        };
        let off = (at - patch) as u32;
        buf[patch..patch + 4].copy_from_slice(&off.to_le_bytes());
    }
    buf
}

enum Child {
    Table(Table),
    Str(String),
    I32s(Vec<i32>),
    Tables(Vec<Table>),
}

fn align(buf: &mut Vec<u8>, n: usize) {
    while !buf.len().is_multiple_of(n) {
        buf.push(0);
    }
}

fn write_table(buf: &mut Vec<u8>, t: Table, pending: &mut Vec<(usize, Child)>) -> usize {
    let slots = t.0.iter().map(|(s, _)| *s as usize + 1).max().unwrap_or(0);
    let vt_len = 4 + 2 * slots;
    let table_len = 4 + 4 * t.0.len();
    // vtable, padded so the table starts 4-aligned
    let vt = buf.len();
    buf.extend((vt_len as u16).to_le_bytes());
    buf.extend((table_len as u16).to_le_bytes());
    let entries = buf.len();
    buf.extend(vec![0u8; 2 * slots]);
    align(buf, 4);
    let table = buf.len();
    buf.extend(((table - vt) as i32).to_le_bytes());
    for (i, (slot, val)) in t.0.into_iter().enumerate() {
        let field = table + 4 + 4 * i;
        let e = entries + 2 * slot as usize;
        buf[e..e + 2].copy_from_slice(&((field - table) as u16).to_le_bytes());
        match val {
            Val::U8(x) => buf.extend([x, 0, 0, 0]),
            Val::I32(x) => buf.extend(x.to_le_bytes()),
            Val::U32(x) => buf.extend(x.to_le_bytes()),
            Val::Str(s) => {
                pending.push((field, Child::Str(s)));
                buf.extend([0u8; 4]);
            }
            Val::I32s(v) => {
                pending.push((field, Child::I32s(v)));
                buf.extend([0u8; 4]);
            }
            Val::Tables(v) => {
                pending.push((field, Child::Tables(v)));
                buf.extend([0u8; 4]);
            }
        }
    }
    table
}

/// An operation of a synthetic model: a custom op name or a builtin code, tensors in/out.
pub struct Op {
    pub custom: Option<&'static str>,
    pub builtin: i32,
    pub inputs: Vec<i32>,
    pub outputs: Vec<i32>,
}

pub const BUILTIN_RELU: i32 = 19;
pub const BUILTIN_CUSTOM: i32 = 32;

/// The custom op `edgetpu-custom-op`, `from` -> `to`.
pub fn edgetpu_op(from: i32, to: i32) -> Op {
    Op {
        custom: Some("edgetpu-custom-op"),
        builtin: BUILTIN_CUSTOM,
        inputs: vec![from],
        outputs: vec![to],
    }
}

pub fn relu_op(from: i32, to: i32) -> Op {
    Op {
        custom: None,
        builtin: BUILTIN_RELU,
        inputs: vec![from],
        outputs: vec![to],
    }
}

/// A TFLite model: `n_tensors` float32 tensors of `shape`, tensor 0 the input, the last
/// one the output, `ops` in order. Operator codes are one per op.
pub fn tflite_model(shape: &[i32], n_tensors: usize, ops: Vec<Op>) -> Vec<u8> {
    let shapes = vec![shape.to_vec(); n_tensors];
    tflite_model_io(&shapes, vec![0], vec![n_tensors as i32 - 1], ops)
}

/// A TFLite model of float32 tensors of the given `shapes`, with graph `inputs` and
/// `outputs` (tensor indices), `ops` in order.
pub fn tflite_model_io(
    shapes: &[Vec<i32>],
    inputs: Vec<i32>,
    outputs: Vec<i32>,
    ops: Vec<Op>,
) -> Vec<u8> {
    tflite_model_sig(shapes, &[], inputs, outputs, ops)
}

/// [`tflite_model_io`] with `shape_signature`s: `signatures[i]` for tensor i (none
/// written for tensors beyond the slice).
pub fn tflite_model_sig(
    shapes: &[Vec<i32>],
    signatures: &[Vec<i32>],
    inputs: Vec<i32>,
    outputs: Vec<i32>,
    ops: Vec<Op>,
) -> Vec<u8> {
    let tensors = shapes
        .iter()
        .enumerate()
        .map(|(i, shape)| {
            let mut t = vec![
                (0, Val::I32s(shape.clone())),
                (1, Val::U8(0)), // FLOAT32
                (2, Val::U32(0)),
                (3, Val::Str(format!("t{i}"))),
            ];
            if let Some(sig) = signatures.get(i) {
                t.push((7, Val::I32s(sig.clone())));
            }
            Table(t)
        })
        .collect();
    let codes = ops
        .iter()
        .map(|op| {
            let mut f = vec![
                (0, Val::U8(op.builtin as u8)),
                (2, Val::I32(1)),
                (3, Val::I32(op.builtin)),
            ];
            if let Some(c) = op.custom {
                f.push((1, Val::Str(c.into())));
            }
            Table(f)
        })
        .collect();
    let operators = ops
        .into_iter()
        .enumerate()
        .map(|(i, op)| {
            Table(vec![
                (0, Val::U32(i as u32)),
                (1, Val::I32s(op.inputs)),
                (2, Val::I32s(op.outputs)),
            ])
        })
        .collect();
    let subgraph = Table(vec![
        (0, Val::Tables(tensors)),
        (1, Val::I32s(inputs)),
        (2, Val::I32s(outputs)),
        (3, Val::Tables(operators)),
        (4, Val::Str("main".into())),
    ]);
    let model = Table(vec![
        (0, Val::U32(3)),
        (1, Val::Tables(codes)),
        (2, Val::Tables(vec![subgraph])),
        (3, Val::Str("edgebench test model".into())),
        (4, Val::Tables(vec![Table(vec![])])),
    ]);
    finish(model, b"TFL3")
}

/// Writes `bytes` as `dir/name`.
pub fn write_model(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write model");
    p
}
