//! Which execution provider each graph node was assigned to, so a record says how much of
//! an "accelerator" run ran on the CPU.
//!
//! ONNX Runtime 1.24 (C API version 24) added `Session_GetEpGraphAssignmentInfo`, filled
//! when the session option `session.record_ep_graph_assignment_info` is set. edgebench
//! binds the C API at version 17 (so older libraries still load), so these three
//! functions are taken from the version-24 function table by index. The table is
//! append-only by ONNX Runtime's ABI rule, so the indices never change; they are
//! checked against the `ort-sys` declaration (see the tests) and exercised against the
//! real library by `tests/labels.rs`.

use std::ffi::{c_char, c_void, CStr};
use std::path::Path;
use std::sync::OnceLock;

use ort::sys::{OrtApi, OrtApiBase, OrtSession, OrtStatusPtr};

/// Session option that makes ONNX Runtime keep the assignment.
pub const RECORD_KEY: &str = "session.record_ep_graph_assignment_info";

const API_VERSION: u32 = 24;
/// Indices in `OrtApi` (function pointers counted from `CreateStatus` = 0).
const IDX_GET_ASSIGNMENT: usize = 407;
const IDX_SUBGRAPH_EP_NAME: usize = 408;
const IDX_SUBGRAPH_NODES: usize = 409;
/// The last function of API version 17 (what edgebench's `ort-sys` declares), whose
/// index anchors the count above.
#[cfg(test)]
const IDX_LAST_API_17: usize = 275;

type GetAssignment = unsafe extern "system" fn(
    *const OrtSession,
    *mut *const *const c_void,
    *mut usize,
) -> OrtStatusPtr;
type GetEpName = unsafe extern "system" fn(*const c_void, *mut *const c_char) -> OrtStatusPtr;
type GetNodes =
    unsafe extern "system" fn(*const c_void, *mut *const *const c_void, *mut usize) -> OrtStatusPtr;

struct Api24 {
    get_assignment: GetAssignment,
    ep_name: GetEpName,
    nodes: GetNodes,
}

static API24: OnceLock<Option<Api24>> = OnceLock::new();

/// Whether a version string (`1.32.0`) is ONNX Runtime 1.24 or newer. Asking an older
/// library for API 24 would make it print an error on stderr.
fn has_api24(version: &str) -> bool {
    let mut it = version.split('.').map(|p| p.parse::<u32>().ok());
    match (it.next().flatten(), it.next().flatten()) {
        (Some(major), Some(minor)) => major > 1 || (major == 1 && minor >= API_VERSION),
        _ => false,
    }
}

/// The version-24 functions of the library at `path` (already loaded, reporting
/// `version`), or None when it is older than ONNX Runtime 1.24.
fn api24(path: &Path, version: &str) -> Option<&'static Api24> {
    if !has_api24(version) {
        return None;
    }
    API24
        .get_or_init(|| {
            type GetApiBase = unsafe extern "C" fn() -> *const OrtApiBase;
            // SAFETY: the library is loaded and initialised by ort already (dlopen
            // returns the same handle); GetApi returns NULL for an unsupported version
            // and otherwise a static function table of at least that version's length.
            unsafe {
                let lib = libloading::Library::new(path).ok()?;
                let get = lib.get::<GetApiBase>(b"OrtGetApiBase").ok()?;
                let base = get();
                std::mem::forget(lib);
                if base.is_null() {
                    return None;
                }
                let api: *const OrtApi = ((*base).GetApi)(API_VERSION);
                if api.is_null() {
                    return None;
                }
                let table = api.cast::<*const c_void>();
                let at = |i: usize| *table.add(i);
                Some(Api24 {
                    get_assignment: std::mem::transmute::<*const c_void, GetAssignment>(at(
                        IDX_GET_ASSIGNMENT,
                    )),
                    ep_name: std::mem::transmute::<*const c_void, GetEpName>(at(
                        IDX_SUBGRAPH_EP_NAME,
                    )),
                    nodes: std::mem::transmute::<*const c_void, GetNodes>(at(IDX_SUBGRAPH_NODES)),
                })
            }
        })
        .as_ref()
}

/// Whether the library at `path` can report node assignment (ONNX Runtime 1.24+).
pub fn supported(path: &Path, version: &str) -> bool {
    api24(path, version).is_some()
}

/// Nodes per provider (ONNX Runtime's provider names, e.g. `CPUExecutionProvider`),
/// sorted by name, for a session created with [`RECORD_KEY`] set. None when the library
/// cannot tell or the call fails (the record then simply lacks the keys).
pub fn nodes_by_provider(
    path: &Path,
    version: &str,
    session: &ort::session::Session,
) -> Option<Vec<(String, usize)>> {
    use ort::AsPointer;
    let api = api24(path, version)?;
    let session: *const OrtSession = session.ptr();
    let ok = |s: OrtStatusPtr| {
        if s.0.is_null() {
            Some(())
        } else {
            // SAFETY: a status returned by ONNX Runtime, released once.
            unsafe { (ort::api().ReleaseStatus)(s.0) };
            None
        }
    };
    let mut counts: Vec<(String, usize)> = Vec::new();
    // SAFETY: the session is alive (borrowed); the arrays and strings returned are owned by
    // it and only read here, while it lives.
    unsafe {
        let mut subs: *const *const c_void = std::ptr::null();
        let mut n_subs = 0usize;
        ok((api.get_assignment)(session, &mut subs, &mut n_subs))?;
        if subs.is_null() && n_subs > 0 {
            return None;
        }
        for i in 0..n_subs {
            let sub = *subs.add(i);
            let mut name: *const c_char = std::ptr::null();
            ok((api.ep_name)(sub, &mut name))?;
            if name.is_null() {
                return None;
            }
            let name = CStr::from_ptr(name).to_string_lossy().into_owned();
            let mut nodes: *const *const c_void = std::ptr::null();
            let mut n_nodes = 0usize;
            ok((api.nodes)(sub, &mut nodes, &mut n_nodes))?;
            match counts.iter_mut().find(|(n, _)| *n == name) {
                Some((_, c)) => *c += n_nodes,
                None => counts.push((name, n_nodes)),
            }
        }
    }
    counts.sort();
    Some(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index count is anchored on the declared table: the last version-17 function
    /// sits where the count says, and nothing beyond version 17 is declared (so the
    /// fields this crate sees are exactly the first 276).
    #[test]
    fn api_24_from_version_strings() {
        assert!(has_api24("1.24.0") && has_api24("1.32.0") && has_api24("2.0.1"));
        assert!(!has_api24("1.19.2") && !has_api24("1.23.9") && !has_api24("unknown"));
    }

    #[test]
    fn indices_match_the_declared_function_table() {
        let ptr = std::mem::size_of::<usize>();
        assert_eq!(
            std::mem::offset_of!(OrtApi, SessionOptionsAppendExecutionProvider_OpenVINO_V2),
            IDX_LAST_API_17 * ptr
        );
        assert_eq!(std::mem::size_of::<OrtApi>(), (IDX_LAST_API_17 + 1) * ptr);
    }
}
