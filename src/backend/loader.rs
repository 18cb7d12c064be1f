//! Finding and opening a runtime's shared library at run time (TensorFlow Lite,
//! libedgetpu): the places looked, in order, and an error that lists each of them.

use std::ffi::{c_char, CStr};
use std::path::{Path, PathBuf};

/// Debian multiarch directory of this target.
const MULTIARCH: &str = if cfg!(target_arch = "x86_64") {
    "/usr/lib/x86_64-linux-gnu"
} else if cfg!(target_arch = "aarch64") {
    "/usr/lib/aarch64-linux-gnu"
} else if cfg!(target_arch = "arm") {
    "/usr/lib/arm-linux-gnueabihf"
} else {
    "/usr/lib"
};

/// Where a runtime library is looked for, in order: `configured` alone when set; else
/// `/usr/lib`, the multiarch dir, `/usr/local/lib`, `/usr/lib64`, the dynamic loader's
/// own search for `file` (LD_LIBRARY_PATH, ld.so.cache), then `local`.
pub fn library_candidates(configured: &str, file: &str, local: Option<PathBuf>) -> Vec<PathBuf> {
    if !configured.is_empty() {
        return vec![PathBuf::from(configured)];
    }
    let mut v: Vec<PathBuf> = ["/usr/lib", MULTIARCH, "/usr/local/lib", "/usr/lib64"]
        .iter()
        .map(|d| Path::new(d).join(file))
        .collect();
    v.dedup();
    v.push(PathBuf::from(file));
    v.extend(local);
    v
}

/// Opens the first candidate that loads. The error lists every place looked and why
/// each failed.
pub fn open_first<T>(
    candidates: &[PathBuf],
    open: impl Fn(&Path) -> Result<T, String>,
) -> Result<T, String> {
    let mut looked = Vec::new();
    for c in candidates {
        let bare = c.components().count() == 1 && !c.is_absolute();
        if !bare && !c.exists() {
            looked.push(format!("{} (not found)", c.display()));
            continue;
        }
        match open(c) {
            Ok(t) => return Ok(t),
            Err(e) if bare => looked.push(format!("the loader's search for {} ({e})", c.display())),
            Err(e) => looked.push(format!("{} ({e})", c.display())),
        }
    }
    Err(looked.join("; "))
}

/// Copies a C string (NULL: empty).
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string.
pub unsafe fn cstr(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    CStr::from_ptr(p).to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_library_is_the_only_candidate() {
        let c = library_candidates(
            "/opt/tfl/libtensorflowlite_c.so",
            "libtensorflowlite_c.so",
            None,
        );
        assert_eq!(c, vec![PathBuf::from("/opt/tfl/libtensorflowlite_c.so")]);
    }

    #[test]
    fn default_search_order() {
        let c = library_candidates(
            "",
            "libtensorflowlite_c.so",
            Some(PathBuf::from("/x/.deps/tflite/l.so")),
        );
        assert_eq!(c[0], Path::new("/usr/lib").join("libtensorflowlite_c.so"));
        assert_eq!(c[c.len() - 2], PathBuf::from("libtensorflowlite_c.so"));
        assert_eq!(c[c.len() - 1], PathBuf::from("/x/.deps/tflite/l.so"));
        assert!(c.contains(&Path::new("/usr/local/lib").join("libtensorflowlite_c.so")));
    }

    #[test]
    fn open_first_lists_every_place_looked() {
        let cands = vec![
            PathBuf::from("/nonexistent/a.so"),
            PathBuf::from("libnothing-here.so"),
        ];
        let e = open_first(&cands, |p| {
            Err::<(), _>(format!("cannot open {}", p.display()))
        })
        .unwrap_err();
        assert!(e.contains("/nonexistent/a.so (not found)"), "{e}");
        assert!(
            e.contains(
                "the loader's search for libnothing-here.so (cannot open libnothing-here.so)"
            ),
            "{e}"
        );
    }
}
