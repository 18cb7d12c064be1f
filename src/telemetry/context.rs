//! What a reader needs to reproduce a number: board model, L4T / JetPack release,
//! nvpmodel power mode, whether clocks are pinned, EMC frequency, CPU governor, total
//! memory, GPU / Edge TPU library versions, Raspberry Pi firmware, kernel.
//!
//! Read from the board's own files under the injected [`SysRoot`], once per sweep (never
//! in the timed loop); a value that cannot be read is absent, never guessed. The parsers
//! are pure functions over file contents, tested on their own; [`read`] is the IO edge.
//!
//! Sources (see the reference notes on telemetry sources):
//! - nvpmodel: `/var/lib/nvpmodel/status` (`pmode:0002`, written by `nvpmodel` itself)
//!   names the active mode id; `/etc/nvpmodel.conf` (`< POWER_MODEL ID=2 NAME=MAXN >`)
//!   its name and `< PM_CONFIG DEFAULT=N >` the mode a board without a status file
//!   boots in.
//! - clocks pinned (what `jetson_clocks` does): every CPU policy's `scaling_min_freq`
//!   equals its `scaling_max_freq`, the GPU devfreq `min_freq` equals `max_freq`, the EMC
//!   rate equals its maximum. Only the parts that could be read are checked; they are
//!   named in `clocks_checked`.
//! - EMC rate: debugfs (root only) `bpmp/debug/clk/emc/{rate,max_rate}` (Xavier, Orin),
//!   `clk/override.emc/clk_rate` + `tegra_bwmgr/emc_max_rate` (Nano, TX).
//! - CUDA / cuDNN / TensorRT: the versioned library files found in the usual library
//!   directories (`libcudart.so.12.2.140`, `libcudnn.so.8.9.4`, `libnvinfer.so.8.6.2`);
//!   the runner replaces them with the ones the process actually mapped when the
//!   provider loaded them ([`loaded_libraries`]).
//! - libedgetpu: the installed `libedgetpu1-std` / `libedgetpu1-max` package (the
//!   `-max` runtime runs the Edge TPU at full clock, `-std` at a reduced one).
//! - Raspberry Pi: board revision code `/proc/device-tree/system/linux,revision` and the
//!   bootloader firmware's build time `/proc/device-tree/chosen/bootloader/build-timestamp`
//!   (both big-endian u32; what `rpi-eeprom-update` reads).

use serde::{Deserialize, Serialize};

use super::board;
use super::cpufreq;
use super::devfreq;
use super::sysroot::SysRoot;

/// Library directories searched for CUDA / cuDNN / TensorRT (under the root).
const LIB_DIRS: &[&str] = &[
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/usr/local/cuda/lib64",
    "/usr/local/cuda/targets/aarch64-linux/lib",
    "/usr/local/cuda/targets/x86_64-linux/lib",
    "/usr/lib",
    "/usr/local/lib",
];

/// Library file stems whose version is recorded, and the key part they fill.
const GPU_LIBS: &[(&str, Lib)] = &[
    ("libcudart.so.", Lib::Cuda),
    ("libcudnn.so.", Lib::Cudnn),
    ("libnvinfer.so.", Lib::TensorRt),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lib {
    Cuda,
    Cudnn,
    TensorRt,
}

/// The context of one sweep, as flat record keys (absent when unknown).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RunContext {
    /// Device-tree `model` (DMI vendor + product on x86).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub board_model: Option<String>,
    /// L4T release from `/etc/nv_tegra_release`, e.g. `36.3.0`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub l4t_release: Option<String>,
    /// JetPack release that ships this L4T release (NVIDIA's release table).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub jetpack_release: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub nvpmodel_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub nvpmodel_name: Option<String>,
    /// `status` (the mode nvpmodel last set) or `default` (no status file: the
    /// configured boot default).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub nvpmodel_source: Option<String>,
    /// True when every checked clock sits at its maximum with min == max.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub clocks_pinned: Option<bool>,
    /// Which clocks `clocks_pinned` looked at, e.g. `cpu,gpu,emc`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub clocks_checked: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub emc_mhz: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub emc_max_mhz: Option<f64>,
    /// `MemTotal` of `/proc/meminfo`, MiB.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mem_total_mb: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cuda_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cudnn_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tensorrt_version: Option<String>,
    /// `installed` (library files found) or `loaded` (mapped by this process).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub gpu_libs_source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub libedgetpu_version: Option<String>,
    /// `std` (reduced clock) or `max` (full clock).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub libedgetpu_variant: Option<String>,
    /// Raspberry Pi board revision code, hex (e.g. `c03114`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rpi_revision: Option<String>,
    /// Raspberry Pi bootloader firmware build time, UTC (`2024-09-23T13:02:56Z`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rpi_firmware_build: Option<String>,
    /// Kernel release under the root (`/proc/sys/kernel/osrelease`); goes to the
    /// record's existing `kernel` key.
    #[serde(skip)]
    pub kernel: Option<String>,
    /// Governor of the first CPU policy; goes to the record's existing `governor` key.
    #[serde(skip)]
    pub governor: Option<String>,
}

impl RunContext {
    /// Flat `key: value` pairs (for `info`), including `kernel` and `governor`.
    pub fn to_map(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        };
        if let Some(k) = &self.kernel {
            m.insert("kernel".into(), k.clone().into());
        }
        if let Some(g) = &self.governor {
            m.insert("governor".into(), g.clone().into());
        }
        m
    }

    /// Replaces the installed GPU library versions by those this process mapped, when
    /// it mapped any (the provider loaded them).
    pub fn apply_loaded(&mut self, loaded: &LoadedLibs) {
        if loaded.is_empty() {
            return;
        }
        self.cuda_version = loaded.cuda.clone();
        self.cudnn_version = loaded.cudnn.clone();
        self.tensorrt_version = loaded.tensorrt.clone();
        self.gpu_libs_source = Some("loaded".into());
    }
}

/// Reads the context under `root`. Never fails: what cannot be read is absent.
pub fn read(root: &SysRoot) -> RunContext {
    let b = board::detect(root, "");
    let l4t = b.l4t.clone();
    let (nvp_id, nvp_name, nvp_source) = nvpmodel(root);
    let emc = emc(root);
    let (pinned, checked) = clocks_pinned(root, emc);
    let mut libs = LoadedLibs::default();
    for dir in LIB_DIRS {
        for name in root.list(dir) {
            libs.add_file_name(&name);
        }
    }
    let (tpu_version, tpu_variant) = root
        .read_string("/var/lib/dpkg/status")
        .ok()
        .and_then(|t| libedgetpu_package(&t))
        .unzip();
    let policies = cpufreq::discover_policies(root);
    RunContext {
        board_model: b.model,
        jetpack_release: l4t.as_deref().and_then(jetpack_of_l4t).map(String::from),
        l4t_release: l4t,
        nvpmodel_id: nvp_id,
        nvpmodel_name: nvp_name,
        nvpmodel_source: nvp_source.map(String::from),
        clocks_pinned: pinned,
        clocks_checked: checked,
        emc_mhz: emc.map(|(cur, _)| cur),
        emc_max_mhz: emc.and_then(|(_, max)| max),
        mem_total_mb: root
            .read_string("/proc/meminfo")
            .ok()
            .and_then(|t| meminfo_kb(&t, "MemTotal:"))
            .map(|kb| kb / 1024),
        gpu_libs_source: (!libs.is_empty()).then(|| "installed".into()),
        cuda_version: libs.cuda,
        cudnn_version: libs.cudnn,
        tensorrt_version: libs.tensorrt,
        libedgetpu_version: tpu_version,
        libedgetpu_variant: tpu_variant,
        rpi_revision: read_be_u32(root, "/proc/device-tree/system/linux,revision")
            .map(|v| format!("{v:x}")),
        rpi_firmware_build: read_be_u32(
            root,
            "/proc/device-tree/chosen/bootloader/build-timestamp",
        )
        .map(|s| iso_utc(s as i64)),
        kernel: root
            .read_string("/proc/sys/kernel/osrelease")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty()),
        governor: cpufreq::governor(root, &policies),
    }
}

/// The active nvpmodel mode: id, name and where the id came from.
fn nvpmodel(root: &SysRoot) -> (Option<u32>, Option<String>, Option<&'static str>) {
    let conf = root.read_string("/etc/nvpmodel.conf").ok();
    let status = root
        .read_string("/var/lib/nvpmodel/status")
        .ok()
        .and_then(|s| parse_nvpmodel_status(&s));
    let (id, source) = match (status, conf.as_deref().and_then(nvpmodel_default)) {
        (Some(id), _) => (id, "status"),
        (None, Some(id)) => (id, "default"),
        (None, None) => return (None, None, None),
    };
    let name = conf.as_deref().and_then(|c| nvpmodel_name(c, id));
    (Some(id), name, Some(source))
}

/// `pmode:0002` (possibly followed by other `key:value` words) -> 2.
pub fn parse_nvpmodel_status(text: &str) -> Option<u32> {
    text.split_whitespace()
        .find_map(|w| w.strip_prefix("pmode:"))
        .and_then(|v| v.parse().ok())
}

/// Fields of a `< TAG K=V ... >` line of nvpmodel.conf, if it is one with `tag`.
fn conf_tag<'a>(line: &'a str, tag: &str) -> Option<impl Iterator<Item = (&'a str, &'a str)>> {
    let inner = line.trim().strip_prefix('<')?.strip_suffix('>')?;
    let mut words = inner.split_whitespace();
    (words.next()? == tag).then(|| words.filter_map(|w| w.split_once('=')))
}

/// Name of mode `id` in nvpmodel.conf (`< POWER_MODEL ID=0 NAME=15W >`).
pub fn nvpmodel_name(conf: &str, id: u32) -> Option<String> {
    conf.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| conf_tag(l, "POWER_MODEL"))
        .find_map(|fields| {
            let fields: Vec<_> = fields.collect();
            let this = fields
                .iter()
                .find(|(k, _)| *k == "ID")
                .and_then(|(_, v)| v.parse::<u32>().ok());
            (this == Some(id))
                .then(|| {
                    fields
                        .iter()
                        .find(|(k, _)| *k == "NAME")
                        .map(|(_, v)| v.to_string())
                })
                .flatten()
        })
}

/// The boot default mode of nvpmodel.conf (`< PM_CONFIG DEFAULT=2 >`).
pub fn nvpmodel_default(conf: &str) -> Option<u32> {
    conf.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| conf_tag(l, "PM_CONFIG"))
        .find_map(|mut f| {
            f.find(|(k, _)| *k == "DEFAULT")
                .and_then(|(_, v)| v.parse().ok())
        })
}

/// JetPack release of an L4T release (NVIDIA's Jetson release table). Unknown: None.
pub fn jetpack_of_l4t(l4t: &str) -> Option<&'static str> {
    Some(match l4t {
        "32.4.3" => "4.4",
        "32.4.4" => "4.4.1",
        "32.5.0" | "32.5" => "4.5",
        "32.5.1" => "4.5.1",
        "32.6.1" => "4.6",
        "32.7.1" => "4.6.1",
        "32.7.2" => "4.6.2",
        "32.7.3" => "4.6.3",
        "32.7.4" => "4.6.4",
        "32.7.5" => "4.6.5",
        "35.1.0" | "35.1" => "5.0.2",
        "35.2.1" => "5.1",
        "35.3.1" => "5.1.1",
        "35.4.1" => "5.1.2",
        "35.5.0" | "35.5" => "5.1.3",
        "35.6.0" | "35.6" => "5.1.4",
        "36.2.0" | "36.2" => "6.0 DP",
        "36.3.0" | "36.3" => "6.0",
        "36.4.0" | "36.4" => "6.1",
        "36.4.3" => "6.2",
        "36.4.4" => "6.2.1",
        _ => return None,
    })
}

/// EMC rate and maximum, MHz, from debugfs (needs root; absent otherwise).
fn emc(root: &SysRoot) -> Option<(f64, Option<f64>)> {
    let pairs = [
        (
            "/sys/kernel/debug/bpmp/debug/clk/emc/rate",
            "/sys/kernel/debug/bpmp/debug/clk/emc/max_rate",
        ),
        (
            "/sys/kernel/debug/clk/override.emc/clk_rate",
            "/sys/kernel/debug/tegra_bwmgr/emc_max_rate",
        ),
        (
            "/sys/kernel/debug/clk/emc/clk_rate",
            "/sys/kernel/debug/clk/emc/clk_max_rate",
        ),
    ];
    pairs.iter().find_map(|(cur, max)| {
        let cur = root.read_i64(cur).filter(|v| *v > 0)?;
        let max = root.read_i64(max).filter(|v| *v > 0 && *v < i64::MAX);
        Some((devfreq::hz_to_mhz(cur), max.map(devfreq::hz_to_mhz)))
    })
}

/// Whether the clocks are pinned (CPU and GPU min == max, EMC at its maximum), and
/// which parts were checked. None when no part could be read.
fn clocks_pinned(
    root: &SysRoot,
    emc: Option<(f64, Option<f64>)>,
) -> (Option<bool>, Option<String>) {
    let mut parts = Vec::new();
    let mut pinned = true;
    let cpu: Vec<Option<bool>> = root
        .list("/sys/devices/system/cpu/cpufreq")
        .into_iter()
        .filter(|n| n.starts_with("policy"))
        .map(|p| {
            let d = format!("/sys/devices/system/cpu/cpufreq/{p}");
            let min = root.read_i64(&format!("{d}/scaling_min_freq"))?;
            let max = root.read_i64(&format!("{d}/scaling_max_freq"))?;
            Some(min == max)
        })
        .collect();
    if !cpu.is_empty() && cpu.iter().all(Option::is_some) {
        parts.push("cpu");
        pinned &= cpu.iter().all(|p| *p == Some(true));
    }
    if let Some(gpu) = devfreq::discover(root).into_iter().find(|d| d.gpu) {
        let d = format!("/sys/class/devfreq/{}", gpu.name);
        if let (Some(min), Some(max)) = (
            root.read_i64(&format!("{d}/min_freq")),
            root.read_i64(&format!("{d}/max_freq")),
        ) {
            parts.push("gpu");
            pinned &= min == max;
        }
    }
    if let Some((cur, Some(max))) = emc {
        parts.push("emc");
        pinned &= cur == max;
    }
    if parts.is_empty() {
        (None, None)
    } else {
        (Some(pinned), Some(parts.join(",")))
    }
}

/// A `Key:   1234 kB` line of `/proc/meminfo`, in kB.
pub fn meminfo_kb(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The installed libedgetpu package of a dpkg `status` file: (version, `std`|`max`).
pub fn libedgetpu_package(status: &str) -> Option<(String, String)> {
    status.split("\n\n").find_map(|para| {
        let field = |name: &str| {
            para.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
        };
        let package = field("Package:")?;
        let variant = package.strip_prefix("libedgetpu1-")?;
        if !matches!(variant, "std" | "max") {
            return None;
        }
        if !field("Status:")?.ends_with(" installed") {
            return None;
        }
        Some((field("Version:")?, variant.to_string()))
    })
}

/// CUDA / cuDNN / TensorRT versions from library file names or mapped paths.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadedLibs {
    pub cuda: Option<String>,
    pub cudnn: Option<String>,
    pub tensorrt: Option<String>,
}

impl LoadedLibs {
    /// True when no library was recognised.
    pub fn is_empty(&self) -> bool {
        self.cuda.is_none() && self.cudnn.is_none() && self.tensorrt.is_none()
    }

    /// Takes the version of a file name such as `libcudart.so.12.2.140`; keeps the
    /// most specific (longest) version seen for each library, since the unversioned
    /// and major-only names are symlinks to the same file.
    pub fn add_file_name(&mut self, name: &str) {
        for (stem, lib) in GPU_LIBS {
            let Some(v) = name.strip_prefix(stem) else {
                continue;
            };
            if v.is_empty()
                || !v
                    .split('.')
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            {
                continue;
            }
            let slot = match lib {
                Lib::Cuda => &mut self.cuda,
                Lib::Cudnn => &mut self.cudnn,
                Lib::TensorRt => &mut self.tensorrt,
            };
            let parts = |s: &str| s.split('.').count();
            if slot.as_deref().is_none_or(|old| parts(v) > parts(old)) {
                *slot = Some(v.to_string());
            }
        }
    }
}

/// GPU libraries mapped by a process, from its `/proc/<pid>/maps` text: what the
/// provider really loaded (the mapped path is the real file, so it carries the full
/// version).
pub fn loaded_libraries(maps: &str) -> LoadedLibs {
    let mut libs = LoadedLibs::default();
    for line in maps.lines() {
        if let Some(path) = line.split_whitespace().nth(5) {
            if let Some(name) = path.rsplit('/').next() {
                libs.add_file_name(name);
            }
        }
    }
    libs
}

/// A big-endian u32 device-tree cell.
fn read_be_u32(root: &SysRoot, logical: &str) -> Option<u32> {
    let bytes = std::fs::read(root.path(logical)).ok()?;
    root.record(logical);
    let b: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian, UTC).
pub fn iso_utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nvpmodel_formats() {
        let conf = "# comment < POWER_MODEL ID=9 NAME=NOPE >\n\
                    < POWER_MODEL ID=0 NAME=15W >\nCPU_ONLINE CORE_0 1\n\n\
                    < POWER_MODEL ID=1 NAME=7W >\n< PM_CONFIG DEFAULT=0 >\n";
        assert_eq!(nvpmodel_name(conf, 0).as_deref(), Some("15W"));
        assert_eq!(nvpmodel_name(conf, 1).as_deref(), Some("7W"));
        assert_eq!(nvpmodel_name(conf, 9), None);
        assert_eq!(nvpmodel_default(conf), Some(0));
        assert_eq!(parse_nvpmodel_status("pmode:0002\n"), Some(2));
        assert_eq!(parse_nvpmodel_status("pmode:0001 fmode:quiet\n"), Some(1));
        assert_eq!(parse_nvpmodel_status("garbage\n"), None);
    }

    #[test]
    fn library_versions_take_the_most_specific_name() {
        let mut l = LoadedLibs::default();
        for n in [
            "libcudart.so",
            "libcudart.so.12",
            "libcudart.so.12.2.140",
            "libcudnn.so.8",
            "libcudnn.so.8.9.4",
            "libnvinfer.so.8.6.2",
            "libnvinfer_plugin.so.8.6.2",
            "libcudart.so.12.2.140.bak",
        ] {
            l.add_file_name(n);
        }
        assert_eq!(l.cuda.as_deref(), Some("12.2.140"));
        assert_eq!(l.cudnn.as_deref(), Some("8.9.4"));
        assert_eq!(l.tensorrt.as_deref(), Some("8.6.2"));
        let maps = "7f00-7f10 r-xp 00000000 b3:02 1234 /usr/local/cuda-12.2/targets/aarch64-linux/lib/libcudart.so.12.2.140\n\
                    7f20-7f30 r--p 00000000 00:00 0 [heap]\n";
        let m = loaded_libraries(maps);
        assert_eq!(m.cuda.as_deref(), Some("12.2.140"));
        assert_eq!(m.tensorrt, None);
        assert!(loaded_libraries("").is_empty());
    }

    #[test]
    fn dpkg_status_names_the_edgetpu_runtime() {
        let status =
            "Package: libedgetpu1-max\nStatus: deinstall ok config-files\nVersion: 15.0\n\n\
                      Package: libedgetpu1-std\nStatus: install ok installed\nVersion: 16.0\n";
        assert_eq!(
            libedgetpu_package(status),
            Some(("16.0".into(), "std".into()))
        );
        assert_eq!(
            libedgetpu_package("Package: libc6\nStatus: install ok installed\nVersion: 2.36\n"),
            None
        );
    }

    #[test]
    fn helpers() {
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(jetpack_of_l4t("36.3.0"), Some("6.0"));
        assert_eq!(jetpack_of_l4t("99.0.0"), None);
        assert_eq!(
            meminfo_kb("MemTotal:        7620692 kB\n", "MemTotal:"),
            Some(7_620_692)
        );
    }
}
