//! Inference runtimes behind one interface.
//!
//! A [`Backend`] is a loaded runtime (ONNX Runtime, TensorFlow Lite); it opens a
//! [`Session`] per configuration. The runner times [`Session::run`] and nothing else.
//! A session says how it realises a batch ([`BatchMode`]): ONNX Runtime feeds a
//! dynamic batch axis in one call, a fixed-batch runtime (TFLite / Edge TPU) makes N
//! calls of batch 1.

use std::path::PathBuf;

use serde::Serialize;

pub mod batch;
pub mod edgetpu;
pub mod loader;
pub mod memory;
pub mod ort;
pub mod ort_nodes;
pub mod precision;
pub mod tflite;
pub mod types;

pub use batch::{plan_batch, BatchPlan, FixedBatch};

/// How a session realises batch N.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchMode {
    /// One call with the batch axis set to N.
    Native,
    /// N calls of a batch-1 model, one after another (fixed-batch runtimes).
    Sequential,
}

impl BatchMode {
    pub fn as_str(self) -> &'static str {
        match self {
            BatchMode::Native => "native",
            BatchMode::Sequential => "sequential",
        }
    }
}

/// Everything needed to open one session.
#[derive(Debug, Clone, Default)]
pub struct SessionSpec {
    pub model_path: PathBuf,
    /// Model input name and shape from the manifest; `-1` marks the batch axis.
    pub input_name: String,
    pub input_shape: Vec<i64>,
    pub input_dtype: String,
    pub batch: u32,
    /// Execution provider (ort) or delegate (tflite); `cpu` for none.
    pub ep: String,
    /// Effective precision ([`precision::resolve`]): what the model file and the
    /// runtime flags below make the run compute in.
    pub precision: String,
    /// TensorRT reduced-precision flags for this run (ignored by other providers).
    pub trt_fp16: bool,
    pub trt_int8: bool,
    /// Intra-op threads (0: runtime default).
    pub threads: u32,
    /// Seed of the generated input data.
    pub seed: u64,
    /// What to do when the model's batch axis is fixed to another size than `batch`.
    pub fixed_batch: FixedBatch,
    /// Root under which `/proc/meminfo` is read to refuse a batch whose buffers do not
    /// fit in available memory before allocating them. None: no check (tests).
    pub mem_root: Option<PathBuf>,
}

/// Why a session could not be opened or run. The runner turns it into a failed record.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The runtime library is missing or unusable (affects every configuration).
    #[error("{0}")]
    Library(String),
    /// The requested provider / delegate is not available in this build or on this machine.
    #[error("{0}")]
    Unsupported(String),
    /// Anything else that failed for this configuration (bad model, out of memory...).
    #[error("{0}")]
    Failed(String),
}

/// A loaded runtime.
pub trait Backend {
    /// `ort` or `tflite`.
    fn name(&self) -> &'static str;
    /// Human name of the runtime (`onnxruntime`, `tflite`).
    fn runtime(&self) -> &'static str;
    /// Version of the loaded library.
    fn runtime_version(&self) -> String;
    /// Providers / delegates this build can use here.
    fn providers(&self) -> Vec<String>;
    /// Opens a session for one configuration: model loaded, inputs generated, outputs
    /// allocated, ready for [`Session::run`].
    fn open(&self, spec: &SessionSpec) -> Result<Box<dyn Session>, BackendError>;
}

/// One configured model instance, ready to be timed.
pub trait Session {
    fn batch_mode(&self) -> BatchMode;
    /// Samples per runtime call: `batch` when native, the model's fixed batch when
    /// sequential (`batch / batch_per_call` calls per timed batch).
    fn batch_per_call(&self) -> u32 {
        self.input_shape()
            .first()
            .and_then(|&b| u32::try_from(b).ok())
            .unwrap_or(1)
    }
    /// The provider or delegate actually used (may differ from the request when
    /// fall-back is allowed).
    fn ep_used(&self) -> String;
    /// The input shape actually fed, batch axis resolved.
    fn input_shape(&self) -> Vec<i64>;
    /// Extra flat fields for the record (provider options, op mapping...), `(key, value)`.
    fn extra_fields(&self) -> Vec<(String, serde_json::Value)> {
        Vec::new()
    }
    /// Duration of the first inference when `open` already ran it (ms); None when the
    /// runner should run and time it.
    fn first_run_ms(&self) -> Option<f64> {
        None
    }
    /// One batch: one call (native) or `batch / batch_per_call` calls (sequential).
    /// Must not allocate beyond what the runtime itself does, and does not copy outputs
    /// out (see [`Session::read_outputs`]).
    fn run(&mut self) -> Result<(), BackendError>;
    /// Host-to-device and device-to-host copy times (ms) measured apart from the timed
    /// call, when inputs and outputs live in device memory (`[onnxruntime] io =
    /// "device"`), after [`Session::read_outputs`].
    fn copy_ms(&self) -> Option<(f64, f64)> {
        None
    }
    /// Copies the outputs of the last run to host buffers, outside the timed region
    /// (TFLite copies out of its arena; ONNX Runtime already wrote into the bound
    /// host buffers). Checks every copy's return code.
    fn read_outputs(&mut self) -> Result<(), BackendError> {
        Ok(())
    }
}

/// Loads a backend by name (`ort`, `tflite`).
pub fn load(name: &str, cfg: &crate::config::Config) -> Result<Box<dyn Backend>, BackendError> {
    match name {
        "ort" => Ok(Box::new(ort::OrtBackend::load(cfg)?)),
        "tflite" => Ok(Box::new(tflite::TfliteBackend::load(cfg)?)),
        other => Err(BackendError::Unsupported(format!(
            "unknown backend `{other}` (ort, tflite)"
        ))),
    }
}

/// Seeded input data: uniform in [-1, 1) for floats, full range for integer types.
pub fn seeded_f32(len: usize, seed: u64) -> Vec<f32> {
    seeded_f32_iter(seed).take(len).collect()
}

/// The endless sequence [`seeded_f32`] takes from (callers allocate fallibly).
pub fn seeded_f32_iter(seed: u64) -> impl Iterator<Item = f32> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    std::iter::repeat_with(move || rng.gen_range(-1.0f32..1.0))
}

/// Seeded bytes, for uint8 / int8 inputs.
pub fn seeded_u8(len: usize, seed: u64) -> Vec<u8> {
    seeded_u8_iter(seed).take(len).collect()
}

/// The endless sequence [`seeded_u8`] takes from.
pub fn seeded_u8_iter(seed: u64) -> impl Iterator<Item = u8> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    std::iter::repeat_with(move || rng.gen())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_inputs_repeat() {
        assert_eq!(seeded_f32(16, 7), seeded_f32(16, 7));
        assert_ne!(seeded_f32(16, 7), seeded_f32(16, 8));
        assert!(seeded_f32(1000, 1).iter().all(|v| (-1.0..1.0).contains(v)));
    }
}
