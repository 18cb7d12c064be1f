//! TensorFlow Lite backend: `libtensorflowlite_c.so` loaded at run time through its
//! classic C API, optionally with the Coral Edge TPU delegate ([`super::edgetpu`]).
//!
//! Per session: model from file, interpreter options (threads, error reporter, delegate),
//! interpreter, input batch resolved, inputs filled from seeded data, output buffers
//! allocated. [`Session::run`] only invokes; [`Session::read_outputs`] copies the
//! outputs out after the timed region (as ONNX Runtime's bound outputs need no copy).
//!
//! Batch: TFLite models usually have a fixed batch. Batch N runs natively (one invoke)
//! when the model's batch already is N or its input can be resized to N (resize +
//! allocate succeed); otherwise as N / B invokes of the model's batch B
//! ([`BatchMode::Sequential`]). Edge-TPU-compiled models are never resized: their
//! shapes are baked into the compiled subgraph.
//!
//! Op mapping: whether every operation runs on the Edge TPU is read from the model
//! graph ([`model::summarize`]); libedgetpu itself reports nothing about it.

use std::ffi::{c_void, CString};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{json, Map, Value};

use super::edgetpu::{EdgeTpuDelegate, EdgeTpuLib};
use super::loader::{library_candidates, open_first};
use super::memory::{check_fits, try_collect};
use super::types::DeviceSelector;
use super::{
    seeded_f32, seeded_u8, Backend, BackendError, BatchMode, FixedBatch, Session, SessionSpec,
};
use crate::config::Config;

pub mod capi;
pub mod model;

use capi::{
    dtype, ErrorLog, TfLiteInterpreter, TfLiteInterpreterOptions, TfLiteModel, TfLiteTensor,
    TfliteApi, TFLITE_OK,
};
use model::GraphSummary;

/// File name of the C library.
pub const LIBRARY: &str = "libtensorflowlite_c.so";
/// Project-local development copy (see `scripts/fetch-tflite.sh`), under the current dir.
pub const LOCAL_COPY: &str = ".deps/tflite/libtensorflowlite_c.so";

/// A loaded TensorFlow Lite runtime.
pub struct TfliteBackend {
    api: Arc<TfliteApi>,
    edgetpu_library: String,
    edgetpu_device: String,
    /// libedgetpu once loaded (failures are not kept: a later try may succeed).
    edgetpu: Mutex<Option<Arc<EdgeTpuLib>>>,
}

impl TfliteBackend {
    /// Loads `libtensorflowlite_c.so`: `[tflite] library` alone when set, else the
    /// standard library paths, the loader's search, then `.deps/tflite/` under the
    /// current directory. The error lists every place looked.
    pub fn load(cfg: &Config) -> Result<TfliteBackend, BackendError> {
        let local = std::env::current_dir().ok().map(|d| d.join(LOCAL_COPY));
        let candidates = library_candidates(&cfg.tflite.library, LIBRARY, local);
        let api = open_first(&candidates, TfliteApi::open).map_err(|looked| {
            BackendError::Library(format!(
                "TensorFlow Lite C library ({LIBRARY}) not found or unusable; looked in: {looked}. \
                 Set [tflite] library to its path"
            ))
        })?;
        Ok(TfliteBackend {
            api: Arc::new(api),
            edgetpu_library: cfg.tflite.edgetpu_library.clone(),
            edgetpu_device: cfg.tflite.edgetpu_device.clone(),
            edgetpu: Mutex::new(None),
        })
    }

    /// Path the library was loaded from (a bare soname when the loader found it).
    pub fn library_path(&self) -> &Path {
        &self.api.path
    }

    /// libedgetpu, loaded on first use.
    fn edgetpu_lib(&self) -> Result<Arc<EdgeTpuLib>, BackendError> {
        let mut slot = self
            .edgetpu
            .lock()
            .map_err(|_| BackendError::Failed("edgetpu library lock poisoned".into()))?;
        if let Some(lib) = slot.as_ref() {
            return Ok(Arc::clone(lib));
        }
        let lib = Arc::new(EdgeTpuLib::load(&self.edgetpu_library)?);
        *slot = Some(Arc::clone(&lib));
        Ok(lib)
    }

    /// [`Backend::open`] with the concrete session type (tests read its outputs).
    pub fn open_session(&self, spec: &SessionSpec) -> Result<TfliteSession, BackendError> {
        let want_edgetpu = match spec.ep.as_str() {
            "" | "cpu" | "none" => false,
            "edgetpu" => true,
            other => {
                return Err(BackendError::Unsupported(format!(
                    "tflite has no delegate `{other}` (cpu, edgetpu)"
                )))
            }
        };
        let path = &spec.model_path;
        let shown = path.display();
        let bytes = std::fs::read(path)
            .map_err(|e| BackendError::Failed(format!("model file {shown}: {e}")))?;
        let graph = model::summarize(&bytes)
            .map_err(|e| BackendError::Failed(format!("model file {shown}: {e}")))?;
        drop(bytes);
        let named_edgetpu = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with("_edgetpu.tflite"));
        if want_edgetpu && !graph.edgetpu_compiled() {
            return Err(BackendError::Failed(format!(
                "model {shown} is not compiled for the Edge TPU (no {}): with delegate edgetpu \
                 all {} operations would run on the CPU; use the edgetpu_compiler output (*_edgetpu.tflite)",
                model::EDGETPU_CUSTOM_OP,
                graph.ops
            )));
        }
        if !want_edgetpu && graph.edgetpu_compiled() {
            return Err(BackendError::Failed(format!(
                "model {shown} is compiled for the Edge TPU ({} {} operations); it runs only with delegate = \"edgetpu\"",
                graph.edgetpu_ops,
                model::EDGETPU_CUSTOM_OP
            )));
        }

        let mut s = TfliteSession::empty(Arc::clone(&self.api));
        if want_edgetpu {
            let selector =
                DeviceSelector::parse(&self.edgetpu_device).map_err(BackendError::Failed)?;
            s.delegate = Some(self.edgetpu_lib()?.delegate_for(selector)?);
        }
        let api = Arc::clone(&self.api);
        let cpath = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| BackendError::Failed(format!("model path {shown} contains a NUL byte")))?;
        // SAFETY: every pointer below is checked for NULL, owned by `s`, and freed by
        // its Drop in the order the C API requires.
        unsafe {
            s.model = (api.model_create_from_file)(cpath.as_ptr());
            if s.model.is_null() {
                return Err(BackendError::Failed(format!(
                    "TfLiteModelCreateFromFile failed for {shown} (not a valid TFLite model?)"
                )));
            }
            s.options = (api.options_create)();
            if s.options.is_null() {
                return Err(BackendError::Failed(
                    "TfLiteInterpreterOptionsCreate failed".into(),
                ));
            }
            if spec.threads > 0 {
                let n = i32::try_from(spec.threads).unwrap_or(i32::MAX);
                (api.options_set_num_threads)(s.options, n);
            }
            if capi::REPORTER_SUPPORTED {
                let log: *const ErrorLog = &*s.errors;
                (api.options_set_error_reporter)(
                    s.options,
                    Some(capi::report_error),
                    log as *mut c_void,
                );
            }
            if let Some(d) = &s.delegate {
                (api.options_add_delegate)(s.options, d.as_ptr());
            }
            s.interpreter = (api.interpreter_create)(s.model, s.options);
            if s.interpreter.is_null() {
                let why = s.errors.take();
                return Err(BackendError::Failed(match &s.delegate {
                    Some(d) => format!(
                        "applying the Edge TPU delegate ({}) to {shown} failed: {}",
                        d.device(),
                        or_unknown(&why)
                    ),
                    None => format!(
                        "creating the interpreter for {shown} failed: {}",
                        or_unknown(&why)
                    ),
                }));
            }
            s.setup(spec, &graph)?;
        }
        s.extra = extra_fields(&s, spec, &graph, named_edgetpu);
        Ok(s)
    }
}

fn or_unknown(s: &str) -> &str {
    if s.is_empty() {
        "no message from TensorFlow Lite"
    } else {
        s
    }
}

fn extra_fields(
    s: &TfliteSession,
    spec: &SessionSpec,
    graph: &GraphSummary,
    named_edgetpu: bool,
) -> Vec<(String, Value)> {
    let mut v: Vec<(String, Value)> = vec![
        (
            "tflite_delegate".into(),
            json!(if s.delegate.is_some() {
                "edgetpu"
            } else {
                "none"
            }),
        ),
        (
            "tflite_threads".into(),
            json!(if spec.threads == 0 {
                -1
            } else {
                i64::from(spec.threads)
            }),
        ),
        ("tflite_invokes_per_batch".into(), json!(s.invokes)),
        (
            "tflite_batch_signature".into(),
            json!(match graph.input_batch_signature {
                Some(b) if b < 0 => "dynamic",
                Some(_) => "fixed",
                None => "absent",
            }),
        ),
        ("tflite_ops".into(), json!(graph.ops)),
        (
            "edgetpu_compiled".into(),
            json!(graph.edgetpu_compiled() || named_edgetpu),
        ),
    ];
    if let Some(e) = &s.resize_error {
        v.push(("tflite_resize_error".into(), json!(e)));
    }
    if graph.edgetpu_compiled() {
        v.push(("edgetpu_ops".into(), json!(graph.edgetpu_ops)));
        v.push(("edgetpu_cpu_ops".into(), json!(graph.cpu_ops())));
        v.push(("edgetpu_all_ops_mapped".into(), json!(graph.cpu_ops() == 0)));
    }
    if let Some(d) = &s.delegate {
        v.push(("edgetpu_device".into(), json!(d.device().path)));
        v.push((
            "edgetpu_device_type".into(),
            json!(d.device().kind.as_str()),
        ));
    }
    v
}

impl Backend for TfliteBackend {
    fn name(&self) -> &'static str {
        "tflite"
    }

    fn runtime(&self) -> &'static str {
        "tflite"
    }

    fn runtime_version(&self) -> String {
        self.api.version()
    }

    /// `cpu`, plus `edgetpu` when libedgetpu loads and lists at least one device.
    fn providers(&self) -> Vec<String> {
        let mut p = vec!["cpu".to_string()];
        if let Ok(lib) = self.edgetpu_lib() {
            if !lib.devices().is_empty() {
                p.push("edgetpu".into());
            }
        }
        p
    }

    fn open(&self, spec: &SessionSpec) -> Result<Box<dyn Session>, BackendError> {
        Ok(Box::new(self.open_session(spec)?))
    }
}

/// One interpreter, ready to be timed. Frees interpreter, delegate, options, model, in
/// that order; the libraries stay loaded while it lives.
pub struct TfliteSession {
    interpreter: *mut TfLiteInterpreter,
    options: *mut TfLiteInterpreterOptions,
    model: *mut TfLiteModel,
    delegate: Option<EdgeTpuDelegate>,
    inputs: Vec<*mut TfLiteTensor>,
    outputs: Vec<(*const TfLiteTensor, Vec<u8>)>,
    invokes: u32,
    batch_mode: BatchMode,
    input_shape: Vec<i64>,
    resize_error: Option<String>,
    first_ms: Option<f64>,
    extra: Vec<(String, Value)>,
    /// Target of the interpreter's error reporter; boxed so its address is stable.
    errors: Box<ErrorLog>,
    api: Arc<TfliteApi>,
}

// SAFETY: the interpreter and its tensors are used from one thread at a time (the
// session's owner); TFLite does not tie an interpreter to the creating thread.
unsafe impl Send for TfliteSession {}

impl TfliteSession {
    fn empty(api: Arc<TfliteApi>) -> TfliteSession {
        TfliteSession {
            interpreter: std::ptr::null_mut(),
            options: std::ptr::null_mut(),
            model: std::ptr::null_mut(),
            delegate: None,
            inputs: Vec::new(),
            outputs: Vec::new(),
            invokes: 1,
            batch_mode: BatchMode::Native,
            input_shape: Vec::new(),
            resize_error: None,
            first_ms: None,
            extra: Vec::new(),
            errors: Box::default(),
            api,
        }
    }

    /// Resolves the batch, allocates tensors, fills inputs, sizes output buffers, then
    /// runs and times the first batch. A resized batch that TFLite accepts at allocation
    /// but fails at invoke falls back to sequential invokes of the model's own batch.
    ///
    /// # Safety
    /// `self.interpreter` is a live interpreter of `self.api`.
    unsafe fn setup(
        &mut self,
        spec: &SessionSpec,
        graph: &GraphSummary,
    ) -> Result<(), BackendError> {
        let api = Arc::clone(&self.api);
        let shown = spec.model_path.display();
        let n_in = (api.get_input_tensor_count)(self.interpreter);
        if n_in < 1 {
            return Err(BackendError::Failed(format!(
                "model {shown} has no input tensor"
            )));
        }
        let original: Vec<Vec<i64>> = (0..n_in)
            .map(|i| api.dims((api.get_input_tensor)(self.interpreter, i)))
            .collect();
        let model_batch = original[0].first().copied().filter(|&b| b > 0).unwrap_or(1);
        let want = i64::from(spec.batch.max(1));
        if let Some(root) = &spec.mem_root {
            // Inputs and outputs at the model's batch, scaled to the one asked for:
            // refused before TFLite allocates its arena at that size.
            let n_out = (api.get_output_tensor_count)(self.interpreter);
            let at_model: u64 = (0..n_in)
                .map(|i| tensor_bytes(&api, (api.get_input_tensor)(self.interpreter, i)))
                .chain(
                    (0..n_out.max(0))
                        .map(|i| tensor_bytes(&api, (api.get_output_tensor)(self.interpreter, i))),
                )
                .fold(0u64, u64::saturating_add);
            let needed = (at_model / model_batch.max(1) as u64).saturating_mul(want as u64);
            check_fits(root, needed, &format!("model {shown} batch {want}"))?;
        }

        // Output sizes at the model's batch, before any resize.
        let n_out = (api.get_output_tensor_count)(self.interpreter).max(0);
        let out_bytes: Vec<u64> = (0..n_out)
            .map(|i| tensor_bytes(&api, (api.get_output_tensor)(self.interpreter, i)))
            .collect();
        let mut resized = false;
        // A shape_signature with a positive batch says the batch was fixed at export:
        // such a model is not resized (sequential invokes, or a refusal).
        let signature_fixed = graph.input_batch_signature.is_some_and(|b| b > 0);
        if want != model_batch && signature_fixed {
            self.resize_error = Some(format!(
                "the input's shape_signature fixes the batch at {}",
                graph.input_batch_signature.unwrap_or(0)
            ));
        }
        if want != model_batch && !graph.edgetpu_compiled() && !signature_fixed {
            match self.resize(&original, model_batch, want) {
                Ok(()) => resized = true,
                Err(e) => {
                    self.resize_error = Some(e);
                    self.resize_back(&original)?;
                }
            }
        }
        if !resized {
            self.sequential(&shown, model_batch, want, spec.fixed_batch)?;
        }
        self.prepare_io(spec)?;
        let first = self.first_run().and_then(|()| {
            if resized {
                self.outputs_follow(&out_bytes, model_batch, want)
                    .map_err(BackendError::Failed)
            } else {
                Ok(())
            }
        });
        match first {
            Ok(()) => Ok(()),
            Err(e) if resized => {
                self.resize_error = Some(format!("batch {want} after resizing: {e}"));
                self.resize_back(&original)?;
                self.sequential(&shown, model_batch, want, spec.fixed_batch)?;
                self.prepare_io(spec)?;
                self.first_run()
            }
            Err(e) => Err(e),
        }
    }

    /// Allocates at the model's own batch and plans `want / model_batch` invokes, or
    /// fails when `fixed` says so.
    unsafe fn sequential(
        &mut self,
        shown: &std::path::Display<'_>,
        model_batch: i64,
        want: i64,
        fixed: FixedBatch,
    ) -> Result<(), BackendError> {
        if want != model_batch && fixed == FixedBatch::Fail {
            return Err(BackendError::Failed(format!(
                "model {shown}: the batch axis is fixed to {model_batch}{}, so batch {want} cannot run in                  one invoke; [protocol] fixed_batch = \"fail\" refuses it (\"sequential\" runs {want} / {model_batch} invokes)",
                self.resize_error
                    .as_deref()
                    .map(|e| format!(" (resize refused: {e})"))
                    .unwrap_or_default()
            )));
        }
        if (self.api.allocate_tensors)(self.interpreter) != TFLITE_OK {
            return Err(BackendError::Failed(format!(
                "allocating tensors for {shown} failed: {}",
                or_unknown(&self.errors.take())
            )));
        }
        if want % model_batch != 0 {
            return Err(BackendError::Failed(format!(
                "model {shown} has a fixed batch of {model_batch}{}; batch {want} is not a multiple of it",
                self.resize_error
                    .as_deref()
                    .map(|e| format!(" (resize refused: {e})"))
                    .unwrap_or_default()
            )));
        }
        self.invokes = u32::try_from(want / model_batch).unwrap_or(u32::MAX);
        self.batch_mode = if self.invokes == 1 {
            BatchMode::Native
        } else {
            BatchMode::Sequential
        };
        Ok(())
    }

    /// Fills every input with seeded data of its type and sizes the output buffers.
    unsafe fn prepare_io(&mut self, spec: &SessionSpec) -> Result<(), BackendError> {
        let api = Arc::clone(&self.api);
        let shown = spec.model_path.display();
        let n_in = (api.get_input_tensor_count)(self.interpreter);
        self.inputs = (0..n_in)
            .map(|i| (api.get_input_tensor)(self.interpreter, i))
            .collect();
        self.input_shape = api.dims(self.inputs[0]);
        for (i, &t) in self.inputs.iter().enumerate() {
            let data = seeded_bytes(&api, t, spec.seed.wrapping_add(i as u64)).map_err(|e| {
                BackendError::Failed(format!(
                    "model {shown}: input tensor `{}` (#{i}): {e}",
                    api.name(t)
                ))
            })?;
            if (api.tensor_copy_from_buffer)(t, data.as_ptr().cast(), data.len()) != TFLITE_OK {
                return Err(BackendError::Failed(format!(
                    "model {shown}: filling input tensor `{}` failed: {}",
                    api.name(t),
                    or_unknown(&self.errors.take())
                )));
            }
        }
        let n_out = (api.get_output_tensor_count)(self.interpreter);
        let mut outputs = Vec::new();
        for i in 0..n_out.max(0) {
            let t = (api.get_output_tensor)(self.interpreter, i);
            let n = (api.tensor_byte_size)(t);
            let buf = try_collect(
                n,
                std::iter::repeat(0u8),
                &format!("output #{i} of {shown}"),
            )?;
            outputs.push((t, buf));
        }
        self.outputs = outputs;
        Ok(())
    }

    /// Runs the first batch (for the Edge TPU this also loads the model onto the
    /// device) and keeps its duration for the record's `first_ms`.
    fn first_run(&mut self) -> Result<(), BackendError> {
        let t = Instant::now();
        self.run()?;
        self.first_ms = Some(t.elapsed().as_secs_f64() * 1e3);
        Ok(())
    }

    /// Sets the batch axis of every input whose first axis equals the model batch to
    /// `want` and allocates. The error is TFLite's reason.
    unsafe fn resize(
        &mut self,
        original: &[Vec<i64>],
        model_batch: i64,
        want: i64,
    ) -> Result<(), String> {
        let api = Arc::clone(&self.api);
        if !original.iter().any(|d| d.first() == Some(&model_batch)) {
            return Err("no input has a batch axis".into());
        }
        for (i, dims) in original.iter().enumerate() {
            if dims.first() != Some(&model_batch) {
                continue;
            }
            let mut d: Vec<i32> = dims.iter().map(|&x| x as i32).collect();
            d[0] = i32::try_from(want).map_err(|_| format!("batch {want} too large"))?;
            if (api.resize_input_tensor)(self.interpreter, i as i32, d.as_ptr(), d.len() as i32)
                != TFLITE_OK
            {
                return Err(or_unknown(&self.errors.take()).to_string());
            }
        }
        if (api.allocate_tensors)(self.interpreter) != TFLITE_OK {
            return Err(or_unknown(&self.errors.take()).to_string());
        }
        Ok(())
    }

    /// After a resized first invoke: every output must have grown with the batch
    /// (`want / model_batch` times its size at the model's batch; a model may fold the
    /// batch into another axis). An input resize TFLite accepts while an output keeps
    /// its size (a reshape with the batch baked in) would time batch N but compute
    /// fewer samples, so it is refused and the batch runs as sequential invokes.
    /// `before` are the output sizes in bytes at the model's batch, from the resized
    /// shapes' originals.
    unsafe fn outputs_follow(
        &self,
        before: &[u64],
        model_batch: i64,
        want: i64,
    ) -> Result<(), String> {
        let api = &self.api;
        for (i, &b) in before.iter().enumerate() {
            let now = tensor_bytes(api, (api.get_output_tensor)(self.interpreter, i as i32));
            let expected = b / model_batch.max(1) as u64 * want as u64;
            if now != expected {
                return Err(format!(
                    "output #{i} has {now} bytes after the input was resized from batch \
                     {model_batch} to {want}, not {expected}: the model does not carry the batch through"
                ));
            }
        }
        Ok(())
    }

    /// Restores the model's own input shapes after a refused resize.
    unsafe fn resize_back(&mut self, original: &[Vec<i64>]) -> Result<(), BackendError> {
        for (i, dims) in original.iter().enumerate() {
            let d: Vec<i32> = dims.iter().map(|&x| x as i32).collect();
            if (self.api.resize_input_tensor)(
                self.interpreter,
                i as i32,
                d.as_ptr(),
                d.len() as i32,
            ) != TFLITE_OK
            {
                return Err(BackendError::Failed(format!(
                    "restoring input shape {dims:?} after a refused resize failed: {}",
                    or_unknown(&self.errors.take())
                )));
            }
        }
        Ok(())
    }

    /// Output `i` as copied by the last [`Session::read_outputs`] (raw bytes, the
    /// tensor's type).
    pub fn output(&self, i: usize) -> Option<&[u8]> {
        self.outputs.get(i).map(|(_, b)| b.as_slice())
    }

    /// Number of output tensors.
    pub fn output_count(&self) -> usize {
        self.outputs.len()
    }

    /// Replaces input `i`'s data (raw bytes of its type; the length must match).
    pub fn set_input(&mut self, i: usize, data: &[u8]) -> Result<(), BackendError> {
        let &t = self
            .inputs
            .get(i)
            .ok_or_else(|| BackendError::Failed(format!("no input tensor #{i}")))?;
        // SAFETY: t is a live input tensor of this session's interpreter.
        let status =
            unsafe { (self.api.tensor_copy_from_buffer)(t, data.as_ptr().cast(), data.len()) };
        if status != TFLITE_OK {
            return Err(BackendError::Failed(format!(
                "input #{i}: {} bytes given: {}",
                data.len(),
                or_unknown(&self.errors.take())
            )));
        }
        Ok(())
    }
}

/// Bytes of a tensor from its dims and type (valid before allocation, unlike
/// `TfLiteTensorByteSize`). Unknown types count 8 bytes per element.
unsafe fn tensor_bytes(api: &TfliteApi, t: *const TfLiteTensor) -> u64 {
    let elem: u64 = match (api.tensor_type)(t) {
        dtype::UINT8 | dtype::INT8 | dtype::BOOL => 1,
        dtype::INT16 | dtype::FLOAT16 => 2,
        dtype::FLOAT32 | dtype::INT32 => 4,
        _ => 8,
    };
    api.dims(t)
        .iter()
        .map(|&d| u64::try_from(d.max(1)).unwrap_or(1))
        .fold(elem, u64::saturating_mul)
}

/// Seeded input bytes for a tensor, by its type.
unsafe fn seeded_bytes(
    api: &TfliteApi,
    t: *const TfLiteTensor,
    seed: u64,
) -> Result<Vec<u8>, String> {
    let bytes = (api.tensor_byte_size)(t);
    let ty = (api.tensor_type)(t);
    Ok(match ty {
        dtype::FLOAT32 => seeded_f32(bytes / 4, seed)
            .into_iter()
            .flat_map(f32::to_ne_bytes)
            .collect(),
        dtype::FLOAT16 => seeded_f32(bytes / 2, seed)
            .into_iter()
            .flat_map(|x| f16_bits(x).to_ne_bytes())
            .collect(),
        dtype::UINT8 | dtype::INT8 => seeded_u8(bytes, seed),
        other => {
            return Err(format!(
                "type {} (edgebench fills float32, float16, uint8 and int8 inputs)",
                dtype::name(other)
            ))
        }
    })
}

/// IEEE half-precision bits of a value in [-1, 1] (round to nearest; subnormals flushed).
fn f16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32 - 127 + 15;
    if exp <= 0 {
        return sign;
    }
    let mant = (b & 0x7f_ffff) + 0x1000; // round
    let (exp, mant) = if mant & 0x80_0000 != 0 {
        (exp + 1, 0)
    } else {
        (exp, mant >> 13)
    };
    sign | ((exp.min(30) as u16) << 10) | mant as u16
}

impl Drop for TfliteSession {
    fn drop(&mut self) {
        // SAFETY: each pointer is NULL or owned by this session; the interpreter goes
        // first, then the delegate it used, then options and model.
        unsafe {
            if !self.interpreter.is_null() {
                (self.api.interpreter_delete)(self.interpreter);
            }
            drop(self.delegate.take());
            if !self.options.is_null() {
                (self.api.options_delete)(self.options);
            }
            if !self.model.is_null() {
                (self.api.model_delete)(self.model);
            }
        }
    }
}

impl Session for TfliteSession {
    fn batch_mode(&self) -> BatchMode {
        self.batch_mode
    }

    fn ep_used(&self) -> String {
        if self.delegate.is_some() {
            "edgetpu"
        } else {
            "cpu"
        }
        .into()
    }

    /// The shape fed to each invoke: batch N when native, the model's batch when
    /// sequential (`tflite_invokes_per_batch` says how many).
    fn input_shape(&self) -> Vec<i64> {
        self.input_shape.clone()
    }

    fn extra_fields(&self) -> Vec<(String, Value)> {
        self.extra.clone()
    }

    fn first_run_ms(&self) -> Option<f64> {
        self.first_ms
    }

    fn run(&mut self) -> Result<(), BackendError> {
        for _ in 0..self.invokes {
            // SAFETY: the interpreter is live and its tensors allocated.
            unsafe {
                if (self.api.invoke)(self.interpreter) != TFLITE_OK {
                    return Err(BackendError::Failed(format!(
                        "TfLiteInterpreterInvoke failed: {}",
                        or_unknown(&self.errors.take())
                    )));
                }
            }
        }
        Ok(())
    }

    fn read_outputs(&mut self) -> Result<(), BackendError> {
        for (i, (t, buf)) in self.outputs.iter_mut().enumerate() {
            // SAFETY: t is a live output tensor; buf has its byte size.
            let status =
                unsafe { (self.api.tensor_copy_to_buffer)(*t, buf.as_mut_ptr().cast(), buf.len()) };
            if status != TFLITE_OK {
                return Err(BackendError::Failed(format!(
                    "copying output #{i} ({} bytes) failed: {}",
                    buf.len(),
                    or_unknown(&self.errors.take())
                )));
            }
        }
        Ok(())
    }
}

/// What `edgebench info` shows about TensorFlow Lite here, as flat string keys (the
/// same names `info` uses for every runtime):
/// `tflite_runtime`, `tflite_version`, `tflite_library`, `tflite_providers` (`cpu`, plus
/// `edgetpu` when libedgetpu loads and lists a device), `tflite_error` (runtime not
/// usable); `edgetpu_library`, `edgetpu_version`, `edgetpu_devices` (`pci /dev/apex_0,usb
/// /sys/...`), `edgetpu_error` (why the Edge TPU is not usable). Never fails.
pub fn probe_info(cfg: &Config) -> Map<String, Value> {
    let mut m = Map::new();
    let backend = match TfliteBackend::load(cfg) {
        Ok(b) => b,
        Err(e) => {
            m.insert("tflite_error".into(), json!(e.to_string()));
            return m;
        }
    };
    m.insert("tflite_runtime".into(), json!(backend.runtime()));
    m.insert("tflite_version".into(), json!(backend.runtime_version()));
    m.insert(
        "tflite_library".into(),
        json!(backend.library_path().display().to_string()),
    );
    let mut providers = vec!["cpu".to_string()];
    match backend.edgetpu_lib() {
        Ok(lib) => {
            m.insert(
                "edgetpu_library".into(),
                json!(lib.path().display().to_string()),
            );
            if let Some(v) = lib.version() {
                m.insert("edgetpu_version".into(), json!(v));
            }
            let devices: Vec<String> = lib.devices().iter().map(ToString::to_string).collect();
            if devices.is_empty() {
                m.insert(
                    "edgetpu_error".into(),
                    json!(format!("{} lists no Edge TPU device", lib.path().display())),
                );
            } else {
                providers.push("edgetpu".into());
            }
            m.insert("edgetpu_devices".into(), json!(devices.join(",")));
        }
        Err(e) => {
            m.insert("edgetpu_error".into(), json!(e.to_string()));
        }
    }
    m.insert("tflite_providers".into(), json!(providers.join(",")));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_conversion() {
        assert_eq!(f16_bits(0.0), 0);
        assert_eq!(f16_bits(1.0), 0x3c00);
        assert_eq!(f16_bits(-0.5), 0xb800);
        assert_eq!(f16_bits(0.333_333_34), 0x3555);
    }
}
