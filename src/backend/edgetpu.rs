//! Coral Edge TPU: `libedgetpu.so.1` loaded at run time through its C API
//! (`edgetpu_c.h`), its devices, and the TFLite delegate it creates.
//!
//! ```c
//! enum edgetpu_device_type { EDGETPU_APEX_PCI = 0, EDGETPU_APEX_USB = 1 };
//! struct edgetpu_device { enum edgetpu_device_type type; const char* path; };
//! struct edgetpu_device* edgetpu_list_devices(size_t* num_devices);
//! void edgetpu_free_devices(struct edgetpu_device* dev);
//! TfLiteDelegate* edgetpu_create_delegate(enum edgetpu_device_type type, const char* name,
//!                                         const struct edgetpu_option* options, size_t num_options);
//! void edgetpu_free_delegate(TfLiteDelegate* delegate);
//! const char* edgetpu_version(void);
//! ```
//!
//! Every failure (library absent, no device, no matching device, delegate refused) is
//! a per-run [`BackendError`] naming the library and the device.

use std::ffi::{c_char, c_int, c_void, CString};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use libloading::Library;

use super::loader::{cstr, library_candidates, open_first};
use super::types::TfLiteDelegate;
pub use super::types::{Device, DeviceSelector, DeviceType};
use super::BackendError;

/// The library's soname.
pub const SONAME: &str = "libedgetpu.so.1";

#[repr(C)]
struct CDevice {
    kind: c_int,
    path: *const c_char,
}

/// A loaded `libedgetpu.so.1`.
pub struct EdgeTpuLib {
    path: PathBuf,
    list_devices: unsafe extern "C" fn(*mut usize) -> *mut CDevice,
    free_devices: unsafe extern "C" fn(*mut CDevice),
    create_delegate:
        unsafe extern "C" fn(c_int, *const c_char, *const c_void, usize) -> *mut TfLiteDelegate,
    free_delegate: unsafe extern "C" fn(*mut TfLiteDelegate),
    version: Option<unsafe extern "C" fn() -> *const c_char>,
    _lib: Library,
}

macro_rules! sym {
    ($lib:expr, $path:expr, $name:literal) => {{
        // SAFETY: the declared type matches edgetpu_c.h for this symbol.
        let s = unsafe { $lib.get(concat!($name, "\0").as_bytes()) }.map_err(|e| {
            format!(
                "{} is not libedgetpu: symbol {} missing ({e})",
                $path, $name
            )
        })?;
        *s
    }};
}

impl EdgeTpuLib {
    /// Loads libedgetpu: `configured` alone when set, else the standard library paths
    /// and the loader's own search for `libedgetpu.so.1`. Absent: `Unsupported`, with
    /// every place looked.
    pub fn load(configured: &str) -> Result<EdgeTpuLib, BackendError> {
        let candidates = library_candidates(configured, SONAME, None);
        open_first(&candidates, EdgeTpuLib::open).map_err(|looked| {
            BackendError::Unsupported(format!(
                "delegate edgetpu: {SONAME} not found or unusable (looked in: {looked}); \
                 install libedgetpu (Coral's libedgetpu1-std) or set [tflite] edgetpu_library"
            ))
        })
    }

    /// Opens one file (or soname) as libedgetpu.
    pub fn open(path: &Path) -> Result<EdgeTpuLib, String> {
        let shown = path.display().to_string();
        // SAFETY: loading runs the library's initialisers; libedgetpu's are ordinary.
        let lib = unsafe { Library::new(path) }.map_err(|e| e.to_string())?;
        // SAFETY: edgetpu_version has this prototype; older libraries may lack it.
        let version = unsafe { lib.get(b"edgetpu_version\0") }.ok().map(|s| *s);
        Ok(EdgeTpuLib {
            path: path.to_path_buf(),
            list_devices: sym!(lib, shown, "edgetpu_list_devices"),
            free_devices: sym!(lib, shown, "edgetpu_free_devices"),
            create_delegate: sym!(lib, shown, "edgetpu_create_delegate"),
            free_delegate: sym!(lib, shown, "edgetpu_free_delegate"),
            version,
            _lib: lib,
        })
    }

    /// Where the library was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `edgetpu_version()`, when the library has it.
    pub fn version(&self) -> Option<String> {
        // SAFETY: returns a static NUL-terminated string.
        self.version.map(|f| unsafe { cstr(f()) })
    }

    /// The Edge TPUs libedgetpu sees now, in its order. Entries of an unknown type
    /// are skipped.
    pub fn devices(&self) -> Vec<Device> {
        let mut n: usize = 0;
        // SAFETY: list_devices fills n and returns an array of n entries (or NULL),
        // which is copied and then released with free_devices, as edgetpu_c.h says.
        unsafe {
            let list = (self.list_devices)(&mut n);
            if list.is_null() {
                return Vec::new();
            }
            let out = std::slice::from_raw_parts(list, n)
                .iter()
                .filter_map(|d| {
                    DeviceType::from_c(d.kind).map(|kind| Device {
                        kind,
                        path: cstr(d.path),
                    })
                })
                .collect();
            (self.free_devices)(list);
            out
        }
    }

    /// Chooses a device with `selector` and creates its delegate. No device, no match:
    /// `Unsupported`; the library refusing: `Failed`. Both name the library and device.
    pub fn delegate_for(
        self: &Arc<Self>,
        selector: DeviceSelector,
    ) -> Result<EdgeTpuDelegate, BackendError> {
        let devices = self.devices();
        if devices.is_empty() {
            return Err(BackendError::Unsupported(format!(
                "delegate edgetpu: {} lists no Edge TPU device (USB Accelerator plugged in? \
                 PCIe/M.2: apex driver loaded, /dev/apex_0 present and accessible?)",
                self.path.display()
            )));
        }
        let Some(device) = selector.pick(&devices) else {
            let found: Vec<String> = devices.iter().map(ToString::to_string).collect();
            return Err(BackendError::Unsupported(format!(
                "delegate edgetpu: no {selector} among the devices {} lists: {}",
                self.path.display(),
                found.join(", ")
            )));
        };
        let name = CString::new(device.path.as_str()).map_err(|_| {
            BackendError::Failed(format!(
                "delegate edgetpu: device path {:?} contains a NUL byte",
                device.path
            ))
        })?;
        // SAFETY: type and name come from edgetpu_list_devices; no options are passed.
        let ptr = unsafe {
            (self.create_delegate)(device.kind.to_c(), name.as_ptr(), std::ptr::null(), 0)
        };
        if ptr.is_null() {
            return Err(BackendError::Failed(format!(
                "delegate edgetpu: edgetpu_create_delegate failed for {device} ({}); \
                 is the device in use by another process?",
                self.path.display()
            )));
        }
        Ok(EdgeTpuDelegate {
            ptr,
            device: device.clone(),
            lib: Arc::clone(self),
        })
    }
}

/// An Edge TPU delegate; freed with `edgetpu_free_delegate` on drop. It must outlive
/// every interpreter it was added to.
pub struct EdgeTpuDelegate {
    ptr: *mut TfLiteDelegate,
    device: Device,
    lib: Arc<EdgeTpuLib>,
}

impl EdgeTpuDelegate {
    pub fn as_ptr(&self) -> *mut TfLiteDelegate {
        self.ptr
    }

    pub fn device(&self) -> &Device {
        &self.device
    }
}

impl Drop for EdgeTpuDelegate {
    fn drop(&mut self) {
        // SAFETY: ptr came from this library's create_delegate and is freed once.
        unsafe { (self.lib.free_delegate)(self.ptr) }
    }
}

// SAFETY: the delegate is a heap object of libedgetpu used from one thread at a time
// (the session that owns it); libedgetpu does not tie it to the creating thread.
unsafe impl Send for EdgeTpuDelegate {}
