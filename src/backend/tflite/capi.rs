//! The classic TensorFlow Lite C API (`tensorflow/lite/c/c_api.h`), declared by hand and
//! resolved from `libtensorflowlite_c.so` at run time.
//!
//! Only the functions edgebench calls are declared. Their signatures have been stable
//! since TensorFlow 2.0; the one struct whose layout matters (`TfLiteDelegate`) is only
//! handled through pointers here.

use std::ffi::{c_char, c_int, c_void};
use std::path::{Path, PathBuf};

use libloading::Library;

/// Opaque C handles.
#[repr(C)]
pub struct TfLiteModel {
    _p: [u8; 0],
}
#[repr(C)]
pub struct TfLiteInterpreterOptions {
    _p: [u8; 0],
}
#[repr(C)]
pub struct TfLiteInterpreter {
    _p: [u8; 0],
}
#[repr(C)]
pub struct TfLiteTensor {
    _p: [u8; 0],
}
pub use crate::backend::types::TfLiteDelegate;

/// `TfLiteStatus`: 0 is `kTfLiteOk`.
pub type TfLiteStatus = c_int;
pub const TFLITE_OK: TfLiteStatus = 0;

/// `TfLiteType` values (`tensorflow/lite/c/common.h`).
pub mod dtype {
    pub const FLOAT32: i32 = 1;
    pub const INT32: i32 = 2;
    pub const UINT8: i32 = 3;
    pub const INT64: i32 = 4;
    pub const STRING: i32 = 5;
    pub const BOOL: i32 = 6;
    pub const INT16: i32 = 7;
    pub const INT8: i32 = 9;
    pub const FLOAT16: i32 = 10;
    pub const FLOAT64: i32 = 11;

    /// The name TFLite prints for a type.
    pub fn name(t: i32) -> &'static str {
        match t {
            FLOAT32 => "float32",
            INT32 => "int32",
            UINT8 => "uint8",
            INT64 => "int64",
            STRING => "string",
            BOOL => "bool",
            INT16 => "int16",
            INT8 => "int8",
            FLOAT16 => "float16",
            FLOAT64 => "float64",
            _ => "other",
        }
    }
}

/// `void (*reporter)(void* user_data, const char* format, va_list args)`. A `va_list`
/// argument is one pointer-sized value on every target we build for (x86-64: pointer to
/// the register save area; aarch64: pointer to the by-reference struct copy; arm: a
/// one-pointer struct in a register), so it is forwarded opaquely to `vsnprintf`.
pub type ErrorReporter = unsafe extern "C" fn(*mut c_void, *const c_char, *mut c_void);

/// Resolved entry points; the library stays loaded as long as this value lives.
pub struct TfliteApi {
    pub path: PathBuf,
    pub version: unsafe extern "C" fn() -> *const c_char,
    pub model_create_from_file: unsafe extern "C" fn(*const c_char) -> *mut TfLiteModel,
    pub model_delete: unsafe extern "C" fn(*mut TfLiteModel),
    pub options_create: unsafe extern "C" fn() -> *mut TfLiteInterpreterOptions,
    pub options_delete: unsafe extern "C" fn(*mut TfLiteInterpreterOptions),
    pub options_set_num_threads: unsafe extern "C" fn(*mut TfLiteInterpreterOptions, i32),
    pub options_add_delegate:
        unsafe extern "C" fn(*mut TfLiteInterpreterOptions, *mut TfLiteDelegate),
    pub options_set_error_reporter:
        unsafe extern "C" fn(*mut TfLiteInterpreterOptions, Option<ErrorReporter>, *mut c_void),
    pub interpreter_create: unsafe extern "C" fn(
        *const TfLiteModel,
        *const TfLiteInterpreterOptions,
    ) -> *mut TfLiteInterpreter,
    pub interpreter_delete: unsafe extern "C" fn(*mut TfLiteInterpreter),
    pub get_input_tensor_count: unsafe extern "C" fn(*const TfLiteInterpreter) -> i32,
    pub get_input_tensor: unsafe extern "C" fn(*const TfLiteInterpreter, i32) -> *mut TfLiteTensor,
    pub resize_input_tensor:
        unsafe extern "C" fn(*mut TfLiteInterpreter, i32, *const c_int, i32) -> TfLiteStatus,
    pub allocate_tensors: unsafe extern "C" fn(*mut TfLiteInterpreter) -> TfLiteStatus,
    pub invoke: unsafe extern "C" fn(*mut TfLiteInterpreter) -> TfLiteStatus,
    pub get_output_tensor_count: unsafe extern "C" fn(*const TfLiteInterpreter) -> i32,
    pub get_output_tensor:
        unsafe extern "C" fn(*const TfLiteInterpreter, i32) -> *const TfLiteTensor,
    pub tensor_type: unsafe extern "C" fn(*const TfLiteTensor) -> i32,
    pub tensor_num_dims: unsafe extern "C" fn(*const TfLiteTensor) -> i32,
    pub tensor_dim: unsafe extern "C" fn(*const TfLiteTensor, i32) -> i32,
    pub tensor_byte_size: unsafe extern "C" fn(*const TfLiteTensor) -> usize,
    pub tensor_name: unsafe extern "C" fn(*const TfLiteTensor) -> *const c_char,
    pub tensor_copy_from_buffer:
        unsafe extern "C" fn(*mut TfLiteTensor, *const c_void, usize) -> TfLiteStatus,
    pub tensor_copy_to_buffer:
        unsafe extern "C" fn(*const TfLiteTensor, *mut c_void, usize) -> TfLiteStatus,
    _lib: Library,
}

macro_rules! sym {
    ($lib:expr, $path:expr, $name:literal) => {{
        // SAFETY: the declared type matches the C API's prototype for this symbol.
        let s = unsafe { $lib.get(concat!($name, "\0").as_bytes()) }.map_err(|e| {
            format!(
                "{} is not the TensorFlow Lite C library: symbol {} missing ({e})",
                $path, $name
            )
        })?;
        *s
    }};
}

impl TfliteApi {
    /// Opens `path` (a file path, or a bare soname for the loader's own search) and
    /// resolves every entry point. The error says which library and which symbol.
    pub fn open(path: &Path) -> Result<TfliteApi, String> {
        let shown = path.display().to_string();
        // SAFETY: loading a library runs its initialisers; libtensorflowlite_c has no
        // unusual ones, and this is the documented way to use the C API at run time.
        let lib = unsafe { Library::new(path) }.map_err(|e| e.to_string())?;
        Ok(TfliteApi {
            path: path.to_path_buf(),
            version: sym!(lib, shown, "TfLiteVersion"),
            model_create_from_file: sym!(lib, shown, "TfLiteModelCreateFromFile"),
            model_delete: sym!(lib, shown, "TfLiteModelDelete"),
            options_create: sym!(lib, shown, "TfLiteInterpreterOptionsCreate"),
            options_delete: sym!(lib, shown, "TfLiteInterpreterOptionsDelete"),
            options_set_num_threads: sym!(lib, shown, "TfLiteInterpreterOptionsSetNumThreads"),
            options_add_delegate: sym!(lib, shown, "TfLiteInterpreterOptionsAddDelegate"),
            options_set_error_reporter: sym!(
                lib,
                shown,
                "TfLiteInterpreterOptionsSetErrorReporter"
            ),
            interpreter_create: sym!(lib, shown, "TfLiteInterpreterCreate"),
            interpreter_delete: sym!(lib, shown, "TfLiteInterpreterDelete"),
            get_input_tensor_count: sym!(lib, shown, "TfLiteInterpreterGetInputTensorCount"),
            get_input_tensor: sym!(lib, shown, "TfLiteInterpreterGetInputTensor"),
            resize_input_tensor: sym!(lib, shown, "TfLiteInterpreterResizeInputTensor"),
            allocate_tensors: sym!(lib, shown, "TfLiteInterpreterAllocateTensors"),
            invoke: sym!(lib, shown, "TfLiteInterpreterInvoke"),
            get_output_tensor_count: sym!(lib, shown, "TfLiteInterpreterGetOutputTensorCount"),
            get_output_tensor: sym!(lib, shown, "TfLiteInterpreterGetOutputTensor"),
            tensor_type: sym!(lib, shown, "TfLiteTensorType"),
            tensor_num_dims: sym!(lib, shown, "TfLiteTensorNumDims"),
            tensor_dim: sym!(lib, shown, "TfLiteTensorDim"),
            tensor_byte_size: sym!(lib, shown, "TfLiteTensorByteSize"),
            tensor_name: sym!(lib, shown, "TfLiteTensorName"),
            tensor_copy_from_buffer: sym!(lib, shown, "TfLiteTensorCopyFromBuffer"),
            tensor_copy_to_buffer: sym!(lib, shown, "TfLiteTensorCopyToBuffer"),
            _lib: lib,
        })
    }

    /// `TfLiteVersion()`, e.g. `2.6.0`.
    pub fn version(&self) -> String {
        // SAFETY: TfLiteVersion returns a static NUL-terminated string.
        unsafe { cstr((self.version)()) }
    }

    /// Shape of a tensor.
    ///
    /// # Safety
    /// `t` must be a live tensor of an interpreter made by this library.
    pub unsafe fn dims(&self, t: *const TfLiteTensor) -> Vec<i64> {
        let n = (self.tensor_num_dims)(t);
        (0..n.max(0))
            .map(|i| i64::from((self.tensor_dim)(t, i)))
            .collect()
    }

    /// Name of a tensor (empty when it has none).
    ///
    /// # Safety
    /// `t` must be a live tensor of an interpreter made by this library.
    pub unsafe fn name(&self, t: *const TfLiteTensor) -> String {
        cstr((self.tensor_name)(t))
    }
}

pub use crate::backend::loader::cstr;

/// Where TFLite's error reporter writes: the last messages of one interpreter, so a
/// failed create / allocate / invoke can say why. Bounded; touched only on errors.
#[derive(Default)]
pub struct ErrorLog {
    text: std::sync::Mutex<String>,
}

/// Keep at most this many bytes of TFLite error text.
const ERROR_LOG_MAX: usize = 4096;

impl ErrorLog {
    /// Takes the collected text, leaving the log empty.
    pub fn take(&self) -> String {
        match self.text.lock() {
            Ok(mut t) => std::mem::take(&mut *t).trim_end().to_string(),
            Err(_) => String::new(),
        }
    }

    fn push(&self, msg: &str) {
        if let Ok(mut t) = self.text.lock() {
            if t.len() + msg.len() + 2 > ERROR_LOG_MAX {
                return;
            }
            if !t.is_empty() {
                t.push_str("; ");
            }
            t.push_str(msg.trim_end());
        }
    }
}

extern "C" {
    fn vsnprintf(buf: *mut c_char, n: usize, fmt: *const c_char, ap: *mut c_void) -> c_int;
}

/// The reporter installed on every interpreter; `user_data` is an `ErrorLog`.
///
/// # Safety
/// Called by TFLite with the `ErrorLog` pointer given at registration, which outlives
/// the interpreter.
pub unsafe extern "C" fn report_error(user_data: *mut c_void, fmt: *const c_char, ap: *mut c_void) {
    if user_data.is_null() || fmt.is_null() {
        return;
    }
    let mut buf = [0 as c_char; 512];
    let n = vsnprintf(buf.as_mut_ptr(), buf.len(), fmt, ap);
    if n < 0 {
        return;
    }
    let log = &*(user_data as *const ErrorLog);
    log.push(&cstr(buf.as_ptr()));
}

/// Whether the `va_list` forwarding in [`report_error`] is known to be right here.
pub const REPORTER_SUPPORTED: bool = cfg!(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "arm"
));
