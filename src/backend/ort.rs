//! ONNX Runtime backend through the `ort` crate, library loaded at run time.
//!
//! Library search order (DESIGN.md section 9): `[onnxruntime] library`, then
//! `ORT_DYLIB_PATH`, then the system library paths, then the project-local copy
//! fetched for development (`.deps/onnxruntime/lib`), and last the dynamic loader's own
//! search by soname (`ld.so.cache`, `LD_LIBRARY_PATH`, `/usr/lib64` on multilib images).
//! ONNX Runtime is process-global:
//! it is loaded once, on first use, and stays loaded.
//!
//! The timed call is `RunWithBinding` on an IoBinding whose input and outputs were
//! allocated before timing, so a run allocates nothing on our side.

use std::ffi::CStr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::ep;
use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{IoBinding, Session as OrtSession};
use ort::value::{DynTensor, Tensor, ValueType};
use ort::AsPointer;

use super::memory::{check_fits, shape_bytes, try_collect};
use super::{
    plan_batch, seeded_f32_iter, seeded_u8_iter, Backend, BackendError, BatchMode, BatchPlan,
    Session, SessionSpec,
};
use crate::config::Config;

/// Short provider names and ONNX Runtime's identifiers.
pub const PROVIDERS: &[(&str, &str)] = &[
    ("cpu", "CPUExecutionProvider"),
    ("cuda", "CUDAExecutionProvider"),
    ("tensorrt", "TensorrtExecutionProvider"),
    ("xnnpack", "XnnpackExecutionProvider"),
    ("openvino", "OpenVINOExecutionProvider"),
    ("acl", "ACLExecutionProvider"),
    ("armnn", "ArmNNExecutionProvider"),
    ("coreml", "CoreMLExecutionProvider"),
    ("rocm", "ROCMExecutionProvider"),
    ("qnn", "QNNExecutionProvider"),
    ("nnapi", "NnapiExecutionProvider"),
    ("dnnl", "DnnlExecutionProvider"),
];

/// ONNX Runtime's identifier for a short name.
pub fn provider_id(short: &str) -> Option<&'static str> {
    PROVIDERS
        .iter()
        .find(|(s, _)| *s == short)
        .map(|(_, id)| *id)
}

fn short_name(id: &str) -> String {
    PROVIDERS
        .iter()
        .find(|(_, i)| *i == id)
        .map(|(s, _)| s.to_string())
        .unwrap_or_else(|| {
            id.trim_end_matches("ExecutionProvider")
                .to_ascii_lowercase()
        })
}

/// Names the dynamic loader is asked for when no candidate file exists: ONNX Runtime's
/// soname first (runtime packages ship only `libonnxruntime.so.1`), then the
/// development link.
pub const SONAMES: &[&str] = &["libonnxruntime.so.1", "libonnxruntime.so"];

/// Where the library was looked for, in order, for error messages. After these files,
/// [`SONAMES`] go to the dynamic loader (unless `[onnxruntime] library` is set).
pub fn library_candidates(cfg: &Config) -> Vec<(String, PathBuf)> {
    let mut c = Vec::new();
    if !cfg.onnxruntime.library.is_empty() {
        // An explicit path is the only candidate: silently using another would mislead.
        c.push((
            "[onnxruntime] library".into(),
            PathBuf::from(&cfg.onnxruntime.library),
        ));
        return c;
    }
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        c.push(("ORT_DYLIB_PATH".into(), PathBuf::from(p)));
    }
    let multiarch = match std::env::consts::ARCH {
        "x86_64" => "x86_64-linux-gnu",
        "aarch64" => "aarch64-linux-gnu",
        "arm" => "arm-linux-gnueabihf",
        other => other,
    };
    for dir in [
        "/usr/lib".to_string(),
        format!("/usr/lib/{multiarch}"),
        "/usr/local/lib".to_string(),
    ] {
        for name in ["libonnxruntime.so", "libonnxruntime.so.1"] {
            c.push(("system library path".into(), Path::new(&dir).join(name)));
        }
    }
    let mut local = vec![PathBuf::from(".deps/onnxruntime/lib/libonnxruntime.so")];
    // Also next to a development build (target/<profile>/edgebench -> repository root).
    if let Ok(exe) = std::env::current_exe() {
        for anc in exe.ancestors().skip(1).take(4) {
            local.push(anc.join(".deps/onnxruntime/lib/libonnxruntime.so"));
        }
    }
    for p in local {
        c.push(("project-local copy".into(), p));
    }
    c
}

/// ONNX Runtime session option: fail session creation when a node would be assigned
/// to the CPU provider although another provider was registered.
pub const DISABLE_CPU_EP_FALLBACK: &str = "session.disable_cpu_ep_fallback";

/// Bytes of the input (`shape`, `elem` bytes each) plus the outputs the session
/// declares, their dynamic axes taken as `per_call` (batch) or 1: what `open` allocates
/// for one call, checked against available memory before allocating it. Saturates.
fn buffer_bytes(session: &OrtSession, shape: &[i64], elem: usize, per_call: u32) -> u64 {
    let mut total = shape_bytes(shape, elem).unwrap_or(u64::MAX);
    for o in session.outputs() {
        let ValueType::Tensor { ty, shape: os, .. } = o.dtype() else {
            continue;
        };
        let dims: Vec<i64> = os
            .iter()
            .enumerate()
            .map(|(i, &d)| match (i, d) {
                (_, d) if d > 0 => d,
                (0, _) => i64::from(per_call),
                _ => 1,
            })
            .collect();
        let e = ty.byte_size(1).unwrap_or(4);
        total = total.saturating_add(shape_bytes(&dims, e).unwrap_or(u64::MAX));
    }
    total
}

struct Loaded {
    env: Environment,
    path: PathBuf,
    version: String,
    providers: Vec<String>,
}

static LOADED: OnceLock<Result<Loaded, String>> = OnceLock::new();

fn load_once(cfg: &Config) -> Result<&'static Loaded, BackendError> {
    LOADED
        .get_or_init(|| {
            let cands = library_candidates(cfg);
            let mut path = cands.iter().map(|(_, p)| p).find(|p| p.is_file()).cloned();
            if path.is_none() && cfg.onnxruntime.library.is_empty() {
                path = find_by_soname();
            }
            let Some(path) = path else {
                let mut tried: Vec<String> =
                    cands.iter().map(|(why, p)| format!("{} ({why})", p.display())).collect();
                if cfg.onnxruntime.library.is_empty() {
                    tried.extend(SONAMES.iter().map(|n| format!("{n} (dynamic loader search)")));
                }
                return Err(format!(
                    "ONNX Runtime library not found; looked for: {}. Set [onnxruntime] library or ORT_DYLIB_PATH, or run `make deps`",
                    tried.join(", ")
                ));
            };
            let builder = ort::init_from(&path).map_err(|e| {
                format!("cannot load ONNX Runtime from {}: {e} (edgebench needs ONNX Runtime 1.{} or newer)", path.display(), ort::MINOR_VERSION)
            })?;
            let env = builder
                .with_name("edgebench")
                .with_telemetry(false)
                .build()
                .map_err(|e| format!("cannot create an ONNX Runtime environment from {}: {e}", path.display()))?;
            let version = runtime_version_string(&path);
            let providers = available_providers().map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(Loaded { env, path, version, providers })
        })
        .as_ref()
        .map_err(|e| BackendError::Library(e.clone()))
}

/// Asks the dynamic loader for each of [`SONAMES`]; the path of the first one found
/// (from `dladdr`, so records name the file, not just the soname).
fn find_by_soname() -> Option<PathBuf> {
    for name in SONAMES {
        // SAFETY: loading ONNX Runtime runs only its static initialisers, as
        // ort::init_from does with the same file right after.
        let Ok(lib) = (unsafe { libloading::Library::new(name) }) else {
            continue;
        };
        let path = loaded_path(&lib);
        // Stays loaded for the process (ort loads it again by path): no dlclose.
        std::mem::forget(lib);
        if path.is_some() {
            return path;
        }
    }
    None
}

/// The file a loaded ONNX Runtime library was mapped from.
fn loaded_path(lib: &libloading::Library) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: only the symbol's address is used, never called here.
    let sym = unsafe { lib.get::<*const libc::c_void>(b"OrtGetApiBase\0") }.ok()?;
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr writes into `info`; dli_fname points into the loader's link map,
    // valid while the library stays loaded.
    if unsafe { libc::dladdr(*sym, &mut info) } == 0 || info.dli_fname.is_null() {
        return None;
    }
    let name = unsafe { CStr::from_ptr(info.dli_fname) };
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(name.to_bytes())))
}

/// `OrtGetApiBase()->GetVersionString()` of the library at `path` (already loaded by
/// `ort`, so dlopen returns the same handle).
fn runtime_version_string(path: &Path) -> String {
    type GetApiBase = unsafe extern "C" fn() -> *const ort::sys::OrtApiBase;
    // SAFETY: the library is already loaded and initialised by ort::init_from.
    unsafe {
        let Ok(lib) = libloading::Library::new(path) else {
            return "unknown".into();
        };
        let Ok(get) = lib.get::<GetApiBase>(b"OrtGetApiBase") else {
            return "unknown".into();
        };
        let base = get();
        if base.is_null() {
            return "unknown".into();
        }
        let v = ((*base).GetVersionString)();
        let s = CStr::from_ptr(v).to_string_lossy().into_owned();
        // Keep the library loaded for the life of the process, as ort does.
        std::mem::forget(lib);
        s
    }
}

fn available_providers() -> Result<Vec<String>, String> {
    let api = ort::api();
    let mut list: *mut *mut std::ffi::c_char = std::ptr::null_mut();
    let mut n: std::ffi::c_int = 0;
    // SAFETY: plain C API call with out-pointers; released below.
    let status = unsafe { (api.GetAvailableProviders)(&mut list, &mut n) };
    check_status(status)?;
    let mut out = Vec::new();
    for i in 0..n.max(0) as usize {
        // SAFETY: ORT returned `n` valid C strings.
        let s = unsafe { CStr::from_ptr(*list.add(i)) };
        out.push(short_name(&s.to_string_lossy()));
    }
    // SAFETY: releasing what GetAvailableProviders allocated.
    let status = unsafe { (api.ReleaseAvailableProviders)(list, n) };
    check_status(status)?;
    out.sort();
    out.dedup();
    Ok(out)
}

fn check_status(status: ort::sys::OrtStatusPtr) -> Result<(), String> {
    if status.0.is_null() {
        return Ok(());
    }
    let api = ort::api();
    // SAFETY: status is a valid OrtStatus; we copy its message and release it.
    let msg = unsafe {
        CStr::from_ptr((api.GetErrorMessage)(status.0))
            .to_string_lossy()
            .into_owned()
    };
    unsafe { (api.ReleaseStatus)(status.0) };
    Err(msg)
}

/// What `edgebench info` and the daemon's `info` report about ONNX Runtime: flat
/// string keys `ort_runtime`, `ort_version`, `ort_library`, `ort_providers`, or
/// `ort_error`. Never fails.
pub fn probe_info(cfg: &Config) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    match OrtBackend::load(cfg) {
        Ok(b) => {
            m.insert("ort_runtime".into(), "onnxruntime".into());
            m.insert("ort_version".into(), b.runtime_version().into());
            m.insert(
                "ort_library".into(),
                b.library_path().display().to_string().into(),
            );
            m.insert("ort_providers".into(), b.providers().join(",").into());
        }
        Err(e) => {
            m.insert("ort_error".into(), e.to_string().into());
        }
    }
    m
}

/// The ONNX Runtime backend. Cheap to clone the handle; the library is process-global.
pub struct OrtBackend {
    loaded: &'static Loaded,
    cfg: Config,
}

impl OrtBackend {
    /// Loads the library (once per process) and lists its providers.
    pub fn load(cfg: &Config) -> Result<OrtBackend, BackendError> {
        let loaded = load_once(cfg)?;
        Ok(OrtBackend {
            loaded,
            cfg: cfg.clone(),
        })
    }

    /// Path of the loaded library.
    pub fn library_path(&self) -> &Path {
        &self.loaded.path
    }

    /// GPU of the provider in use (io = device allocates there).
    fn device_id(&self, ep_used: &str) -> i32 {
        let id = if ep_used == "tensorrt" {
            self.cfg.tensorrt.device_id
        } else {
            self.cfg.cuda.device_id
        };
        i32::try_from(id).unwrap_or(0)
    }

    fn trt_cache_dir(&self) -> PathBuf {
        if !self.cfg.tensorrt.engine_cache_dir.is_empty() {
            PathBuf::from(&self.cfg.tensorrt.engine_cache_dir)
        } else {
            self.cfg.store_dir().join("trt-cache")
        }
    }

    /// The providers to register for `ep` with their options from the config.
    fn dispatch(
        &self,
        short: &str,
        spec: &SessionSpec,
    ) -> Result<Vec<ep::ExecutionProviderDispatch>, BackendError> {
        let c = &self.cfg;
        let algo = match c.cuda.cudnn_conv_algo_search.as_str() {
            "heuristic" => ep::cuda::ConvAlgorithmSearch::Heuristic,
            "default" => ep::cuda::ConvAlgorithmSearch::Default,
            _ => ep::cuda::ConvAlgorithmSearch::Exhaustive,
        };
        let mut cuda = ep::CUDA::default()
            .with_device_id(c.cuda.device_id as i32)
            .with_conv_algorithm_search(algo);
        if c.cuda.mem_limit_mb > 0 {
            cuda = cuda.with_memory_limit((c.cuda.mem_limit_mb * 1024 * 1024) as usize);
        }
        Ok(match short {
            "cpu" => vec![],
            "cuda" => vec![cuda.build().error_on_failure()],
            "tensorrt" => {
                let cache = self.trt_cache_dir();
                let mut trt = ep::TensorRT::default()
                    .with_device_id(c.tensorrt.device_id as i32)
                    .with_fp16(spec.trt_fp16)
                    .with_int8(spec.trt_int8)
                    .with_max_workspace_size((c.tensorrt.workspace_mb * 1024 * 1024) as usize)
                    .with_engine_cache(true)
                    .with_engine_cache_path(cache.display())
                    .with_timing_cache(true)
                    .with_timing_cache_path(cache.display());
                if c.tensorrt.dla_core >= 0 {
                    trt = trt.with_dla(true).with_dla_core(c.tensorrt.dla_core as u32);
                }
                // Nodes TensorRT cannot take run on CUDA, not on the CPU.
                vec![
                    trt.build().error_on_failure(),
                    cuda.build().error_on_failure(),
                ]
            }
            "xnnpack" => {
                let mut x = ep::XNNPACK::default();
                if let Some(n) = std::num::NonZeroUsize::new(c.xnnpack.threads as usize) {
                    x = x.with_intra_op_num_threads(n);
                }
                vec![x.build().error_on_failure()]
            }
            "acl" => vec![ep::ACL::default()
                .with_fast_math(c.acl.fast_math)
                .build()
                .error_on_failure()],
            "openvino" => vec![ep::OpenVINO::default().build().error_on_failure()],
            other => {
                return Err(BackendError::Unsupported(format!(
                "execution provider `{other}` is not supported by edgebench's ONNX Runtime backend"
            )))
            }
        })
    }
}

impl Backend for OrtBackend {
    fn name(&self) -> &'static str {
        "ort"
    }
    fn runtime(&self) -> &'static str {
        "onnxruntime"
    }
    fn runtime_version(&self) -> String {
        self.loaded.version.clone()
    }
    fn providers(&self) -> Vec<String> {
        self.loaded.providers.clone()
    }

    fn open(&self, spec: &SessionSpec) -> Result<Box<dyn Session>, BackendError> {
        let fail =
            |what: &str, e: &dyn std::fmt::Display| BackendError::Failed(format!("{what}: {e}"));
        let requested = spec.ep.as_str();
        provider_id(requested).ok_or_else(|| {
            BackendError::Unsupported(format!("unknown execution provider `{requested}`"))
        })?;
        let mut ep_used = requested.to_string();
        let mut fallback_reason = None;
        if !self.loaded.providers.iter().any(|p| p == requested) {
            let msg = format!(
                "execution provider `{requested}` is not in this ONNX Runtime build ({} at {}); this build has: {}",
                self.loaded.version,
                self.loaded.path.display(),
                self.loaded.providers.join(", ")
            );
            if self.cfg.onnxruntime.allow_fallback {
                log::warn!("{msg}; falling back to cpu as [onnxruntime] allow_fallback = true");
                ep_used = "cpu".into();
                fallback_reason = Some(msg);
            } else {
                return Err(BackendError::Unsupported(msg));
            }
        }
        if !spec.model_path.is_file() {
            return Err(BackendError::Failed(format!(
                "model file {} does not exist",
                spec.model_path.display()
            )));
        }

        let opt = match self.cfg.onnxruntime.graph_optimization.as_str() {
            "disable" => GraphOptimizationLevel::Disable,
            "basic" => GraphOptimizationLevel::Level1,
            "extended" => GraphOptimizationLevel::Level2,
            _ => GraphOptimizationLevel::All,
        };
        let mut b = OrtSession::builder(&self.loaded.env)
            .map_err(|e| fail("session builder", &e))?
            .with_optimization_level(opt)
            .map_err(|e| fail("graph optimisation level", &e))?
            .with_intra_op_spinning(self.cfg.onnxruntime.spinning)
            .map_err(|e| fail("intra-op spinning", &e))?;
        if spec.threads > 0 {
            b = b
                .with_intra_threads(spec.threads as usize)
                .map_err(|e| fail("intra-op threads", &e))?;
        }
        if self.cfg.onnxruntime.inter_threads > 0 {
            b = b
                .with_inter_threads(self.cfg.onnxruntime.inter_threads as usize)
                .map_err(|e| fail("inter-op threads", &e))?;
        }
        if !self.cfg.onnxruntime.affinity.is_empty() {
            b = b
                .with_config_entry(
                    "session.intra_op_thread_affinities",
                    &self.cfg.onnxruntime.affinity,
                )
                .map_err(|e| fail("thread affinity", &e))?;
        }
        // An accelerator run whose unsupported nodes would silently run on the CPU is
        // refused (session creation fails) unless partial fall-back is allowed.
        let refuse_cpu_nodes = ep_used != "cpu" && !self.cfg.onnxruntime.allow_partial_fallback;
        if refuse_cpu_nodes {
            b = b
                .with_config_entry(DISABLE_CPU_EP_FALLBACK, "1")
                .map_err(|e| fail("disable CPU fall-back", &e))?;
        }
        let record_nodes = super::ort_nodes::supported(&self.loaded.path, &self.loaded.version);
        if record_nodes {
            b = b
                .with_config_entry(super::ort_nodes::RECORD_KEY, "1")
                .map_err(|e| fail("record node assignment", &e))?;
        }
        let io = Io::parse(&self.cfg.onnxruntime.io).map_err(BackendError::Failed)?;
        check_io(io, &ep_used, fallback_reason.as_deref())?;
        let eps = self.dispatch(&ep_used, spec)?;
        if !eps.is_empty() {
            if ep_used == "tensorrt" {
                std::fs::create_dir_all(self.trt_cache_dir()).map_err(|e| {
                    fail(
                        &format!("TensorRT engine cache {}", self.trt_cache_dir().display()),
                        &e,
                    )
                })?;
            }
            b = b.with_execution_providers(eps).map_err(|e| {
                BackendError::Unsupported(format!(
                    "cannot register execution provider `{ep_used}`: {e}"
                ))
            })?;
        }
        let mut session = b.commit_from_file(&spec.model_path).map_err(|e| {
            let hint = if refuse_cpu_nodes {
                format!(
                    " (CPU fall-back of nodes `{ep_used}` cannot run is refused;                      [onnxruntime] allow_partial_fallback = true permits and records it)"
                )
            } else {
                String::new()
            };
            fail(
                &format!("cannot load model {}{hint}", spec.model_path.display()),
                &e,
            )
        })?;

        // Input, generated once from the seed, with the shape the session reports.
        let input_name = if spec.input_name.is_empty() {
            session
                .inputs()
                .first()
                .map(|i| i.name().to_string())
                .unwrap_or_default()
        } else {
            spec.input_name.clone()
        };
        let model_shape: Vec<i64> = session
            .inputs()
            .iter()
            .find(|i| i.name() == input_name)
            .ok_or_else(|| {
                BackendError::Failed(format!(
                    "model {} has no input `{input_name}` (inputs: {})",
                    spec.model_path.display(),
                    session
                        .inputs()
                        .iter()
                        .map(|i| i.name().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?
            .dtype()
            .tensor_shape()
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        let what = format!(
            "model {} input `{input_name}` batch {}",
            spec.model_path.display(),
            spec.batch
        );
        let plan = plan_batch(
            &model_shape,
            &spec.input_shape,
            spec.batch,
            spec.fixed_batch,
            &what,
        )?;
        let shape = plan.shape.clone();
        let elem = match spec.input_dtype.as_str() {
            "uint8" => 1,
            _ => 4,
        };
        if let Some(root) = &spec.mem_root {
            let needed = buffer_bytes(&session, &shape, elem, plan.per_call);
            check_fits(root, needed, &what)?;
        }
        let len = usize::try_from(
            shape_bytes(&shape, 1)
                .ok_or_else(|| BackendError::Failed(format!("{what}: input size overflows")))?,
        )
        .map_err(|_| BackendError::Failed(format!("{what}: input too large")))?;
        let mut binding = session
            .create_binding()
            .map_err(|e| fail("IoBinding", &e))?;
        let host_input: DynTensor = match spec.input_dtype.as_str() {
            "float32" | "" => {
                let data = try_collect(len, seeded_f32_iter(spec.seed), "input")?;
                Tensor::from_array((shape.clone(), data))
                    .map_err(|e| fail("input tensor", &e))?
                    .upcast()
            }
            "uint8" => {
                let data = try_collect(len, seeded_u8_iter(spec.seed), "input")?;
                Tensor::from_array((shape.clone(), data))
                    .map_err(|e| fail("input tensor", &e))?
                    .upcast()
            }
            other => {
                return Err(BackendError::Failed(format!(
                    "input dtype `{other}` is not supported"
                )))
            }
        };
        // io = device: the input lives in CUDA memory, copied there once before timing.
        let mut device = match io {
            Io::Host => None,
            Io::Device => {
                let mem = MemoryInfo::new(
                    AllocationDevice::CUDA,
                    self.device_id(&ep_used),
                    AllocatorType::Device,
                    MemoryType::Default,
                )
                .map_err(|e| fail("CUDA memory info", &e))?;
                let allocator = Allocator::new(&session, mem.clone())
                    .map_err(|e| fail("CUDA allocator (io = device)", &e))?;
                let ValueType::Tensor { ty, .. } = host_input.dtype() else {
                    return Err(BackendError::Failed("input is not a tensor".into()));
                };
                let mut input = DynTensor::new(&allocator, *ty, shape.clone())
                    .map_err(|e| fail("allocate the device input", &e))?;
                host_input
                    .copy_into(&mut input)
                    .map_err(|e| fail("copy the input to the device", &e))?;
                Some(DeviceIo {
                    mem,
                    input,
                    outputs: Vec::new(),
                    host_outputs: Vec::new(),
                    allocator,
                })
            }
        };
        let bound = device.as_ref().map_or(&host_input, |d| &d.input);
        binding
            .bind_input(&input_name, bound)
            .map_err(|e| fail(&format!("bind input `{input_name}`"), &e))?;

        // First run lets ONNX Runtime allocate the outputs; then we allocate our own of
        // the same shapes and bind them, so timed runs write into them.
        let cpu = MemoryInfo::new(
            AllocationDevice::CPU,
            0,
            AllocatorType::Device,
            MemoryType::CPUOutput,
        )
        .map_err(|e| fail("memory info", &e))?;
        let output_names: Vec<String> = session
            .outputs()
            .iter()
            .map(|o| o.name().to_string())
            .collect();
        for name in &output_names {
            let mem = device.as_ref().map_or(&cpu, |d| &d.mem);
            binding
                .bind_output_to_device(name, mem)
                .map_err(|e| fail("bind output", &e))?;
        }
        let first_ms;
        let mut shapes = Vec::new();
        let first = std::time::Instant::now();
        {
            let mut outs = session
                .run_binding(&binding)
                .map_err(|e| fail("first inference", &e))?;
            // The first batch makes all its calls, as a timed one does.
            for _ in 1..plan.calls {
                drop(outs);
                outs = session
                    .run_binding(&binding)
                    .map_err(|e| fail("first inference", &e))?;
            }
            first_ms = first.elapsed().as_secs_f64() * 1e3;
            for name in &output_names {
                let v = outs
                    .get(name.as_str())
                    .ok_or_else(|| BackendError::Failed(format!("output `{name}` missing")))?;
                match v.dtype() {
                    ValueType::Tensor { ty, shape, .. } => {
                        shapes.push((name.clone(), *ty, shape.to_vec()))
                    }
                    other => {
                        return Err(BackendError::Failed(format!(
                            "output `{name}` is not a tensor ({other:?})"
                        )))
                    }
                }
            }
        }
        for (name, ty, shape) in &shapes {
            let t = DynTensor::new(session.allocator(), *ty, shape.clone())
                .map_err(|e| fail(&format!("allocate output `{name}`"), &e))?;
            match device.as_mut() {
                None => binding
                    .bind_output(name, t)
                    .map_err(|e| fail(&format!("bind output `{name}`"), &e))?,
                Some(d) => {
                    // Outputs stay in device memory; `t` is their host copy, made
                    // (and timed as d2h) after the timed region.
                    let mut on_device = DynTensor::new(&d.allocator, *ty, shape.clone())
                        .map_err(|e| fail(&format!("allocate device output `{name}`"), &e))?;
                    binding
                        .bind_output(name, &mut on_device)
                        .map_err(|e| fail(&format!("bind output `{name}`"), &e))?;
                    d.outputs.push(on_device);
                    d.host_outputs.push(t);
                }
            }
        }
        let c = &self.cfg;
        let mut options = vec![
            (
                "ort_graph_optimization".to_string(),
                serde_json::json!(c.onnxruntime.graph_optimization),
            ),
            (
                "ort_inter_threads".to_string(),
                serde_json::json!(c.onnxruntime.inter_threads),
            ),
            (
                "ort_spinning".to_string(),
                serde_json::json!(c.onnxruntime.spinning),
            ),
        ];
        if !c.onnxruntime.affinity.is_empty() {
            options.push((
                "ort_affinity".to_string(),
                serde_json::json!(c.onnxruntime.affinity),
            ));
        }
        match ep_used.as_str() {
            "cuda" => {
                options.push(("cuda_device_id".into(), serde_json::json!(c.cuda.device_id)));
                options.push((
                    "cuda_conv_algo_search".into(),
                    serde_json::json!(c.cuda.cudnn_conv_algo_search),
                ));
            }
            "tensorrt" => {
                options.push(("trt_fp16".into(), serde_json::json!(spec.trt_fp16)));
                options.push(("trt_int8".into(), serde_json::json!(spec.trt_int8)));
                options.push((
                    "trt_engine_cache".into(),
                    serde_json::json!(self.trt_cache_dir().display().to_string()),
                ));
            }
            "xnnpack" => options.push((
                "xnnpack_threads".into(),
                serde_json::json!(c.xnnpack.threads),
            )),
            "acl" => options.push(("acl_fast_math".into(), serde_json::json!(c.acl.fast_math))),
            _ => {}
        }
        if ep_used != "cpu" {
            options.push((
                "ort_cpu_fallback".into(),
                serde_json::json!(if refuse_cpu_nodes {
                    "refused"
                } else {
                    "allowed"
                }),
            ));
        }
        options.push(("io".into(), serde_json::json!(io.as_str())));
        // Where the nodes run (ONNX Runtime 1.24+): how much of an accelerator run
        // is on the CPU, as counted by the runtime itself.
        if let Some(by_ep) = record_nodes
            .then(|| {
                super::ort_nodes::nodes_by_provider(
                    &self.loaded.path,
                    &self.loaded.version,
                    &session,
                )
            })
            .flatten()
        {
            let total: usize = by_ep.iter().map(|(_, n)| n).sum();
            let cpu: usize = by_ep
                .iter()
                .filter(|(ep, _)| ep == "CPUExecutionProvider")
                .map(|(_, n)| n)
                .sum();
            let list: Vec<String> = by_ep
                .iter()
                .map(|(ep, n)| format!("{}:{n}", short_name(ep)))
                .collect();
            options.push(("ort_nodes".into(), serde_json::json!(total)));
            options.push(("ort_nodes_cpu".into(), serde_json::json!(cpu)));
            options.push((
                "ort_node_providers".into(),
                serde_json::json!(list.join(",")),
            ));
        }
        // What the timed call copies between host and device besides inference: with
        // io = host on an accelerator, ONNX Runtime copies the outputs back to the
        // bound host buffers in every run (the input was copied once, when bound).
        let timed_copies = match (io, ep_used.as_str()) {
            (Io::Host, "cuda" | "tensorrt") => "d2h",
            _ => "none",
        };
        options.push(("io_timed_copies".into(), serde_json::json!(timed_copies)));
        Ok(Box::new(OrtRun {
            binding,
            device,
            host_input,
            copy_ms: None,
            session,
            ep_used,
            fallback_reason,
            plan,
            first_ms,
            options,
        }))
    }
}

/// `[onnxruntime] io`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Io {
    /// Inputs and outputs bound in host memory (default).
    Host,
    /// Inputs and outputs bound in CUDA device memory; copies timed separately.
    Device,
}

impl Io {
    /// Parses the config value; the error lists the accepted ones.
    pub fn parse(s: &str) -> Result<Io, String> {
        match s {
            "host" => Ok(Io::Host),
            "device" => Ok(Io::Device),
            other => Err(format!(
                "onnxruntime.io `{other}` is not one of: \"host\", \"device\""
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Io::Host => "host",
            Io::Device => "device",
        }
    }
}

/// Whether `io` can run on `ep_used`: device memory needs CUDA (cuda, tensorrt).
pub fn check_io(io: Io, ep_used: &str, fallback: Option<&str>) -> Result<(), BackendError> {
    if io == Io::Device && !matches!(ep_used, "cuda" | "tensorrt") {
        return Err(BackendError::Unsupported(format!(
            "[onnxruntime] io = \"device\" binds inputs and outputs to CUDA device memory and needs ep = cuda \
             or tensorrt with the CUDA provider present; this run uses `{ep_used}`{}",
            fallback
                .map(|f| format!(" ({f})"))
                .unwrap_or_default()
        )));
    }
    Ok(())
}

/// Device-resident inputs and outputs (io = device) and their host copies.
struct DeviceIo {
    mem: MemoryInfo<'static>,
    input: DynTensor,
    outputs: Vec<DynTensor>,
    host_outputs: Vec<DynTensor>,
    /// Last: the tensors above were allocated from it.
    allocator: Allocator,
}

/// Median of a few timed repetitions of `f` (ms).
fn median_ms(
    reps: usize,
    mut f: impl FnMut() -> Result<(), BackendError>,
) -> Result<f64, BackendError> {
    let mut v = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = std::time::Instant::now();
        f()?;
        v.push(t.elapsed().as_secs_f64() * 1e3);
    }
    v.sort_by(f64::total_cmp);
    Ok(v[v.len() / 2])
}

struct OrtRun {
    binding: IoBinding,
    device: Option<DeviceIo>,
    host_input: DynTensor,
    /// (h2d, d2h) ms measured after the timed region (io = device).
    copy_ms: Option<(f64, f64)>,
    session: OrtSession,
    ep_used: String,
    fallback_reason: Option<String>,
    plan: BatchPlan,
    first_ms: f64,
    /// Session and provider options, recorded flat in the result.
    options: Vec<(String, serde_json::Value)>,
}

impl Session for OrtRun {
    fn batch_mode(&self) -> BatchMode {
        self.plan.mode
    }
    fn batch_per_call(&self) -> u32 {
        self.plan.per_call
    }
    fn ep_used(&self) -> String {
        self.ep_used.clone()
    }
    fn input_shape(&self) -> Vec<i64> {
        self.plan.shape.clone()
    }
    fn first_run_ms(&self) -> Option<f64> {
        Some(self.first_ms)
    }
    fn copy_ms(&self) -> Option<(f64, f64)> {
        self.copy_ms
    }

    /// io = device: copies the outputs to host and times both directions (median of
    /// 5), as trtexec reports H2D / D2H apart from compute.
    fn read_outputs(&mut self) -> Result<(), BackendError> {
        let Some(d) = self.device.as_mut() else {
            return Ok(());
        };
        let failed = |what: &str, e: ort::Error| BackendError::Failed(format!("{what}: {e}"));
        let host_input = &self.host_input;
        let h2d = median_ms(5, || {
            host_input
                .copy_into(&mut d.input)
                .map_err(|e| failed("host-to-device copy", e))
        })?;
        let (outs, hosts) = (&d.outputs, &mut d.host_outputs);
        let d2h = median_ms(5, || {
            for (o, h) in outs.iter().zip(hosts.iter_mut()) {
                o.copy_into(&mut *h)
                    .map_err(|e| failed("device-to-host copy", e))?;
            }
            Ok(())
        })?;
        self.copy_ms = Some((h2d, d2h));
        Ok(())
    }

    fn extra_fields(&self) -> Vec<(String, serde_json::Value)> {
        let mut v = self.options.clone();
        if let Some(r) = &self.fallback_reason {
            v.push((
                "ep_fallback".to_string(),
                serde_json::Value::String(r.clone()),
            ));
        }
        v
    }

    #[inline]
    fn run(&mut self) -> Result<(), BackendError> {
        let api = ort::api();
        for _ in 0..self.plan.calls {
            // SAFETY: session and binding are alive and were created together; the
            // bound input and outputs are owned by the binding. No allocation happens
            // here.
            let status = unsafe {
                (api.RunWithBinding)(
                    self.session.ptr().cast_mut(),
                    std::ptr::null(),
                    self.binding.ptr(),
                )
            };
            if !status.0.is_null() {
                return Err(BackendError::Failed(
                    check_status(status).err().unwrap_or_default(),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_names_round_trip() {
        for (s, id) in PROVIDERS {
            assert_eq!(provider_id(s), Some(*id));
            assert_eq!(short_name(id), *s);
        }
        assert_eq!(short_name("FooExecutionProvider"), "foo");
    }

    /// The key is one ONNX Runtime knows: with only the CPU provider and fall-back to it
    /// disabled, session creation fails (a misspelt key would be silently ignored).
    /// `make deps` fetches the x86-64 library, so the aarch64 run under qemu skips it
    /// (check-aarch64.sh runs a real aarch64 sweep instead).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn disable_cpu_ep_fallback_is_honoured_by_onnxruntime() {
        let mut cfg = Config::default();
        cfg.onnxruntime.library = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/.deps/onnxruntime/lib/libonnxruntime.so"
        )
        .into();
        let b = OrtBackend::load(&cfg).expect("ONNX Runtime from make deps");
        let model = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/models/tiny_cnn.onnx"
        );
        let Err(e) = OrtSession::builder(&b.loaded.env)
            .unwrap()
            .with_config_entry(DISABLE_CPU_EP_FALLBACK, "1")
            .unwrap()
            .commit_from_file(model)
        else {
            panic!("a CPU-only session with CPU fall-back disabled must fail")
        };
        let e = e.to_string();
        assert!(e.to_lowercase().contains("fallback"), "{e}");
        OrtSession::builder(&b.loaded.env)
            .unwrap()
            .commit_from_file(model)
            .expect("without the key the same session opens");
    }

    #[test]
    fn explicit_library_is_the_only_candidate() {
        let mut cfg = Config::default();
        cfg.onnxruntime.library = "/opt/x/libonnxruntime.so".into();
        let c = library_candidates(&cfg);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].1, PathBuf::from("/opt/x/libonnxruntime.so"));
    }
}
