//! The injected root every probe reads under.
//!
//! Probes name kernel paths as they appear on a running system (`/sys/class/thermal`);
//! [`SysRoot`] maps them under a root directory: `/` on the board, a captured tree in
//! tests and bug reports, the host's mount in a container. Symlinks inside a non-`/`
//! root are followed by hand so that absolute targets (`/proc/device-tree ->
//! /sys/firmware/devicetree/base`) stay inside the root instead of escaping to the host.
//!
//! A recording root remembers every file that was read successfully, which is what
//! `edgebench probe --capture` copies.

use std::collections::{BTreeSet, VecDeque};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use super::sensor::Recorder;
use super::sensor::{PowerState, Radix, Sensor};

/// Most symlinks followed while resolving one path (the kernel's limit is 40).
const MAX_LINK_HOPS: usize = 40;

/// A root directory that kernel paths are read under.
#[derive(Debug, Clone)]
pub struct SysRoot {
    root: PathBuf,
    host: bool,
    recorder: Option<Recorder>,
}

impl SysRoot {
    /// Reads under `root` (`/` for the running system).
    pub fn new(root: impl Into<PathBuf>) -> SysRoot {
        let root = root.into();
        let host = root == Path::new("/");
        SysRoot {
            root,
            host,
            recorder: None,
        }
    }

    /// Like [`SysRoot::new`], remembering every file read (see [`SysRoot::recorded`]).
    pub fn recording(root: impl Into<PathBuf>) -> SysRoot {
        let mut r = SysRoot::new(root);
        r.recorder = Some(Arc::new(Mutex::new(BTreeSet::new())));
        r
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Logical paths of the files read so far (empty unless recording).
    pub fn recorded(&self) -> Vec<String> {
        match &self.recorder {
            Some(r) => r
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .cloned()
                .collect(),
            None => Vec::new(),
        }
    }

    pub(crate) fn record(&self, logical: &str) {
        if let Some(r) = &self.recorder {
            r.lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(logical.to_string());
        }
    }

    /// Where a logical path lives on this machine.
    pub fn path(&self, logical: &str) -> PathBuf {
        if self.host {
            PathBuf::from(logical)
        } else {
            self.root
                .join(resolve_in(&self.root, logical, &mut |_, _| {}).trim_start_matches('/'))
        }
    }

    /// Names in a directory, in natural order (`zone2` before `zone10`). Missing or
    /// unreadable: empty.
    pub fn list(&self, dir: &str) -> Vec<String> {
        let mut names: Vec<String> = match fs::read_dir(self.path(dir)) {
            Ok(rd) => rd
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect(),
            Err(_) => Vec::new(),
        };
        names.sort_by_key(|n| natural_key(n));
        names
    }

    /// True when the logical path exists (without reading it).
    pub fn exists(&self, logical: &str) -> bool {
        self.path(logical).exists()
    }

    /// Reads a text file, trimming the trailing newline / NUL the kernel writes
    /// (device-tree strings end in NUL).
    pub fn read_string(&self, logical: &str) -> io::Result<String> {
        let bytes = fs::read(self.path(logical))?;
        self.record(logical);
        let text = String::from_utf8_lossy(&bytes);
        Ok(text.trim_end_matches(['\n', '\0', ' ', '\t']).to_string())
    }

    /// Reads a device-tree string list (NUL-separated, e.g. `compatible`).
    pub fn read_string_list(&self, logical: &str) -> io::Result<Vec<String>> {
        let bytes = fs::read(self.path(logical))?;
        self.record(logical);
        Ok(bytes
            .split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).trim().to_string())
            .collect())
    }

    /// Reads a decimal integer file (`48500\n`). None: missing, unreadable or not a number.
    pub fn read_i64(&self, logical: &str) -> Option<i64> {
        self.read_string(logical).ok()?.trim().parse().ok()
    }

    /// Opens a file to be read repeatedly (see [`Sensor`]). A file that cannot be
    /// opened still yields a sensor whose reads are absent.
    pub fn sensor(&self, logical: &str, radix: Radix, min_interval: Duration) -> Sensor {
        let file = fs::File::open(self.path(logical));
        Sensor::new(
            logical.to_string(),
            file,
            radix,
            min_interval,
            self.recorder.clone(),
        )
    }

    /// Opens a sensor only when the file exists.
    pub fn sensor_if_exists(&self, logical: &str, radix: Radix) -> Option<Sensor> {
        let p = self.path(logical);
        if p.is_file() {
            Some(self.sensor(logical, radix, Duration::ZERO))
        } else {
            None
        }
    }

    /// Opens a device's `power_state` when it has one (recorded, so a capture keeps
    /// the reason a sensor was not read).
    pub fn power_state(&self, logical: &str) -> Option<PowerState> {
        let file = fs::File::open(self.path(logical)).ok()?;
        self.record(logical);
        Some(PowerState::new(logical.to_string(), file))
    }

    /// Resolves a logical path inside `root`, calling `on_link(link, target)` for each
    /// symlink passed (link as a resolved logical path, target as stored).
    pub fn walk(&self, logical: &str, on_link: &mut dyn FnMut(&str, &str)) -> String {
        resolve_in(&self.root, logical, on_link)
    }
}

/// Resolves `logical` component by component under `root`, following symlinks and
/// keeping absolute targets inside `root`. Returns the resolved logical path.
fn resolve_in(root: &Path, logical: &str, on_link: &mut dyn FnMut(&str, &str)) -> String {
    let mut done: Vec<String> = Vec::new();
    let mut pending: VecDeque<String> = logical
        .split('/')
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect();
    let mut hops = 0;
    while let Some(c) = pending.pop_front() {
        match c.as_str() {
            "." => continue,
            ".." => {
                done.pop();
                continue;
            }
            _ => {}
        }
        let mut here = root.to_path_buf();
        here.extend(done.iter());
        here.push(&c);
        let is_link = fs::symlink_metadata(&here)
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(false);
        if is_link && hops < MAX_LINK_HOPS {
            if let Ok(target) = fs::read_link(&here) {
                hops += 1;
                let target = target.to_string_lossy().into_owned();
                let link_logical = format!("/{}", {
                    let mut v = done.clone();
                    v.push(c.clone());
                    v.join("/")
                });
                on_link(&link_logical, &target);
                if target.starts_with('/') {
                    done.clear();
                }
                for t in target.split('/').filter(|t| !t.is_empty()).rev() {
                    pending.push_front(t.to_string());
                }
                continue;
            }
        }
        done.push(c);
    }
    format!("/{}", done.join("/"))
}

/// Sort key splitting a trailing number off (`thermal_zone10` -> (`thermal_zone`, 10)).
fn natural_key(name: &str) -> (String, u64, String) {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (stem, num) = name.split_at(name.len() - digits);
    (stem.to_string(), num.parse().unwrap_or(0), name.to_string())
}

/// The number after `prefix` in `name` (`thermal_zone3` -> 3), if that is all there is.
pub fn suffix_number(name: &str, prefix: &str) -> Option<u32> {
    let rest = name.strip_prefix(prefix)?;
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    rest.parse().ok()
}

/// `CPU-therm` -> `cpu_therm`: lower case, anything but letters and digits to `_`.
pub fn slug(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn absolute_links_stay_inside_the_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = dir.path().join("sys/firmware/devicetree/base");
        fs::create_dir_all(&base).expect("mkdir");
        fs::write(base.join("model"), b"Board\0").expect("write");
        fs::create_dir_all(dir.path().join("proc")).expect("mkdir");
        symlink(
            "/sys/firmware/devicetree/base",
            dir.path().join("proc/device-tree"),
        )
        .expect("symlink");
        let root = SysRoot::new(dir.path());
        assert_eq!(
            root.read_string("/proc/device-tree/model").expect("read"),
            "Board"
        );
        let mut links = Vec::new();
        let resolved = root.walk("/proc/device-tree/model", &mut |l, t| {
            links.push((l.to_string(), t.to_string()))
        });
        assert_eq!(resolved, "/sys/firmware/devicetree/base/model");
        assert_eq!(
            links,
            vec![(
                "/proc/device-tree".to_string(),
                "/sys/firmware/devicetree/base".to_string()
            )]
        );
    }

    #[test]
    fn relative_links_and_dotdot_resolve() {
        let dir = tempfile::tempdir().expect("tempdir");
        let real = dir.path().join("sys/devices/virtual/thermal/thermal_zone0");
        fs::create_dir_all(&real).expect("mkdir");
        fs::write(real.join("temp"), b"41000\n").expect("write");
        fs::create_dir_all(dir.path().join("sys/class/thermal")).expect("mkdir");
        symlink(
            "../../devices/virtual/thermal/thermal_zone0",
            dir.path().join("sys/class/thermal/thermal_zone0"),
        )
        .expect("symlink");
        let root = SysRoot::new(dir.path());
        assert_eq!(
            root.read_i64("/sys/class/thermal/thermal_zone0/temp"),
            Some(41000)
        );
        assert_eq!(root.list("/sys/class/thermal"), vec!["thermal_zone0"]);
    }

    #[test]
    fn natural_order_and_helpers() {
        let mut v = vec!["zone10", "zone2", "zone1"];
        v.sort_by_key(|n| natural_key(n));
        assert_eq!(v, vec!["zone1", "zone2", "zone10"]);
        assert_eq!(suffix_number("thermal_zone12", "thermal_zone"), Some(12));
        assert_eq!(suffix_number("thermal_zone", "thermal_zone"), None);
        assert_eq!(suffix_number("cooling_device1x", "cooling_device"), None);
        assert_eq!(slug("CPU-therm"), "cpu_therm");
        assert_eq!(slug("Package id 0"), "package_id_0");
    }
}
