//! The model zoo: manifest, lookup, integrity checks.
//!
//! A manifest (`manifest.toml`) lists every model file with its task, input and
//! precision, plus named sets (`quick`, `paper`). Files live in the model directory;
//! names given by users (CLI, MQTT) never reach outside it.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::config::Config;

/// Model directory on a board.
pub const SYSTEM_MODEL_DIR: &str = "/usr/share/edgebench/models";

/// One manifest entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    pub name: String,
    /// `classification`, `detection` or `segmentation`.
    pub task: String,
    /// File name relative to the model directory.
    pub file: String,
    /// sha256 of the reference file ("" when unknown).
    #[serde(default)]
    pub sha256: String,
    pub input_name: String,
    /// Input shape; `-1` on axis 0 marks the dynamic batch axis.
    pub input_shape: Vec<i64>,
    #[serde(default = "default_dtype")]
    pub dtype: String,
    #[serde(default = "default_precision")]
    pub precision: String,
    /// For a variant (e.g. `_int8`): the model it derives from.
    #[serde(default)]
    pub base: String,
    /// Network architecture (`mobilenet_v2`, `ssdlite320_mobilenet_v3_large`...), shared
    /// by every file of the same network whatever its runtime or name; `edgebench report`
    /// pairs results by it. Empty: derived from the name ([`arch_from_name`]).
    #[serde(default)]
    pub arch: String,
    #[serde(default)]
    pub origin: String,
    #[serde(default)]
    pub licence: String,
}

fn default_dtype() -> String {
    "float32".into()
}
fn default_precision() -> String {
    "fp32".into()
}

impl ModelEntry {
    /// The architecture: the manifest's `arch`, else derived from the name.
    pub fn arch(&self) -> String {
        if self.arch.is_empty() {
            arch_from_name(self.base_name())
        } else {
            self.arch.clone()
        }
    }

    /// The name users select it by (its base for variants).
    pub fn base_name(&self) -> &str {
        if self.base.is_empty() {
            &self.name
        } else {
            &self.base
        }
    }
}

/// The architecture a model name stands for when no manifest says (records written
/// before `arch` existed): the name without its variant suffixes (`_int8`, `_fp16`,
/// `_quant`, `_edgetpu`, `_uint8`), with Coral's `mnv2` spelled `mobilenet_v2`.
/// `mobilenet_v2_quant_edgetpu` -> `mobilenet_v2`, `deeplabv3_mnv2_quant` ->
/// `deeplabv3_mobilenet_v2`.
pub fn arch_from_name(name: &str) -> String {
    const SUFFIXES: [&str; 5] = ["_edgetpu", "_quant", "_int8", "_uint8", "_fp16"];
    let mut s = name;
    loop {
        match SUFFIXES.iter().find_map(|x| s.strip_suffix(x)) {
            Some(rest) if !rest.is_empty() => s = rest,
            _ => break,
        }
    }
    s.replace("_mnv2", "_mobilenet_v2")
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    #[serde(default)]
    sets: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    model: Vec<ModelEntry>,
}

/// The loaded zoo.
#[derive(Debug, Clone)]
pub struct Zoo {
    pub dir: PathBuf,
    pub manifest: PathBuf,
    pub models: Vec<ModelEntry>,
    pub sets: BTreeMap<String, Vec<String>>,
}

/// Rejects names that could reach outside the model directory or are not plain names.
pub fn check_model_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 128 {
        bail!("model name must be 1 to 128 characters");
    }
    if name.contains('/') || name.contains('\\') || name.contains("..") || name.starts_with('.') {
        bail!("model name `{name}` is not a plain name (no paths or `..`)");
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        bail!(
            "model name `{}` has the character {c:?}; use letters, digits, _ and -",
            name.escape_debug()
        );
    }
    Ok(())
}

impl Zoo {
    /// Loads the zoo the configuration points at: `[models] dir` (else `models/build`
    /// when present, else the system model directory) and its `manifest.toml` (else
    /// `models/manifest.toml`).
    pub fn load(cfg: &Config) -> Result<Zoo> {
        let dir = if !cfg.models.dir.is_empty() {
            PathBuf::from(&cfg.models.dir)
        } else if Path::new("models/build").is_dir() {
            PathBuf::from("models/build")
        } else {
            PathBuf::from(SYSTEM_MODEL_DIR)
        };
        let manifest = if !cfg.models.manifest.is_empty() {
            PathBuf::from(&cfg.models.manifest)
        } else if dir.join("manifest.toml").is_file() {
            dir.join("manifest.toml")
        } else if Path::new("models/manifest.toml").is_file() {
            PathBuf::from("models/manifest.toml")
        } else {
            dir.join("manifest.toml")
        };
        Zoo::load_from(&dir, &manifest)
    }

    /// Loads a manifest; model files are looked up in `dir`.
    pub fn load_from(dir: &Path, manifest: &Path) -> Result<Zoo> {
        let text = std::fs::read_to_string(manifest).with_context(|| {
            format!(
                "cannot read the model manifest {} (build the models with `make models`, or set [models] dir / manifest)",
                manifest.display()
            )
        })?;
        let m: ManifestFile = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: {}", manifest.display(), e.message().trim()))?;
        let mut seen = std::collections::BTreeSet::new();
        for e in &m.model {
            check_model_name(&e.name)
                .with_context(|| format!("{}: model entry", manifest.display()))?;
            if !seen.insert(e.name.clone()) {
                bail!("{}: model `{}` is listed twice", manifest.display(), e.name);
            }
            if e.file.contains("..") || Path::new(&e.file).is_absolute() {
                bail!(
                    "{}: model `{}` file `{}` leaves the model directory",
                    manifest.display(),
                    e.name,
                    e.file
                );
            }
        }
        let zoo = Zoo {
            dir: dir.to_path_buf(),
            manifest: manifest.to_path_buf(),
            models: m.model,
            sets: m.sets,
        };
        for (set, names) in &zoo.sets {
            for n in names {
                if !zoo.knows(n) {
                    bail!(
                        "{}: set `{set}` names unknown model `{n}`",
                        manifest.display()
                    );
                }
            }
        }
        Ok(zoo)
    }

    /// True when `name` is a model (by name or base name).
    pub fn knows(&self, name: &str) -> bool {
        self.models
            .iter()
            .any(|m| m.name == name || m.base_name() == name)
    }

    /// Base names, in manifest order, without duplicates.
    pub fn base_names(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for m in &self.models {
            if !out.iter().any(|n| n == m.base_name()) {
                out.push(m.base_name().to_string());
            }
        }
        out
    }

    /// Expands `@set` entries and checks every name; errors name the unknown one and
    /// list what is known.
    pub fn expand(&self, names: &[String]) -> Result<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        for n in names {
            let add: Vec<String> = if let Some(set) = n.strip_prefix('@') {
                self.sets.get(set).cloned().with_context(|| {
                    let known: Vec<&str> = self.sets.keys().map(String::as_str).collect();
                    format!("unknown model set `@{set}` (sets: {})", known.join(", "))
                })?
            } else {
                check_model_name(n)?;
                if !self.knows(n) {
                    bail!(
                        "unknown model `{n}` (known: {})",
                        self.base_names().join(", ")
                    );
                }
                vec![n.clone()]
            };
            for a in add {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
        Ok(out)
    }

    /// The entry for a model at a precision: an exact name with that precision, else
    /// the variant whose base is `name` with that precision. `fp16`: an fp16 variant,
    /// else the fp32 file.
    pub fn resolve(&self, name: &str, precision: &str) -> Option<&ModelEntry> {
        let find = |want: &str| {
            self.models
                .iter()
                .find(|m| m.name == name && m.precision == want)
                .or_else(|| {
                    self.models
                        .iter()
                        .find(|m| m.base_name() == name && m.precision == want)
                })
        };
        // fp16: an fp16 variant when the manifest has one, else the fp32 file (which
        // only TensorRT with fp16 allowed turns into an fp16 run; see
        // backend::precision).
        match precision {
            "fp16" => find("fp16").or_else(|| find("fp32")),
            p => find(p),
        }
    }

    /// Full path of an entry's file.
    pub fn path_of(&self, e: &ModelEntry) -> PathBuf {
        self.dir.join(&e.file)
    }
}

/// sha256 of a file, hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// One row of `edgebench models`.
#[derive(Debug, Clone, Serialize)]
pub struct ModelStatus {
    pub name: String,
    pub task: String,
    pub precision: String,
    pub file: String,
    pub present: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// `ok`, `mismatch`, `unknown` (no sha in the manifest) or `missing`.
    pub sha256: String,
    pub sets: String,
}

impl Zoo {
    /// Presence, size and checksum of every entry.
    pub fn status(&self) -> Vec<ModelStatus> {
        self.models
            .iter()
            .map(|m| {
                let path = self.path_of(m);
                let meta = std::fs::metadata(&path).ok().filter(|md| md.is_file());
                let sha = match &meta {
                    None => "missing".to_string(),
                    Some(_) if m.sha256.is_empty() => "unknown".to_string(),
                    Some(_) => match sha256_file(&path) {
                        Ok(h) if h.eq_ignore_ascii_case(&m.sha256) => "ok".to_string(),
                        Ok(_) => "mismatch".to_string(),
                        Err(e) => format!("unreadable: {e}"),
                    },
                };
                let sets: Vec<&str> = self
                    .sets
                    .iter()
                    .filter(|(_, v)| v.iter().any(|n| n == m.base_name()))
                    .map(|(k, _)| k.as_str())
                    .collect();
                ModelStatus {
                    name: m.name.clone(),
                    task: m.task.clone(),
                    precision: m.precision.clone(),
                    file: m.file.clone(),
                    present: meta.is_some(),
                    size_bytes: meta.map(|md| md.len()),
                    sha256: sha,
                    sets: sets.join(","),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"
[sets]
quick = ["a"]
[[model]]
name = "a"
task = "classification"
file = "a.onnx"
sha256 = ""
input_name = "input"
input_shape = [-1, 3, 8, 8]
[[model]]
name = "a_int8"
base = "a"
precision = "int8"
task = "classification"
file = "a_int8.onnx"
input_name = "input"
input_shape = [-1, 3, 8, 8]
"#;

    fn zoo() -> (tempfile::TempDir, Zoo) {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("manifest.toml"), MANIFEST).unwrap();
        std::fs::write(d.path().join("a.onnx"), b"abc").unwrap();
        let z = Zoo::load_from(d.path(), &d.path().join("manifest.toml")).unwrap();
        (d, z)
    }

    #[test]
    fn names_cannot_escape() {
        for bad in ["../etc/passwd", "/abs", "a/b", "..", ".hidden", "a b", ""] {
            assert!(check_model_name(bad).is_err(), "{bad}");
        }
        assert!(check_model_name("mobilenet_v2").is_ok());
    }

    #[test]
    fn expand_sets_and_reject_unknown() {
        let (_d, z) = zoo();
        assert_eq!(z.expand(&["@quick".into(), "a".into()]).unwrap(), vec!["a"]);
        let e = z.expand(&["nope".into()]).unwrap_err().to_string();
        assert!(
            e.contains("unknown model `nope`") && e.contains("known: a"),
            "{e}"
        );
        assert!(z.expand(&["@nope".into()]).is_err());
    }

    #[test]
    fn resolve_precision_variants() {
        let (_d, z) = zoo();
        assert_eq!(z.resolve("a", "int8").unwrap().name, "a_int8");
        assert_eq!(z.resolve("a", "fp32").unwrap().name, "a");
        assert_eq!(z.resolve("a", "fp16").unwrap().name, "a");
        assert!(z.resolve("a_int8", "fp32").is_none());
    }

    #[test]
    fn status_reports_presence_and_checksum() {
        let (_d, z) = zoo();
        let s = z.status();
        assert!(s[0].present && s[0].size_bytes == Some(3) && s[0].sha256 == "unknown");
        assert!(!s[1].present && s[1].sha256 == "missing");
        assert_eq!(
            sha256_file(&z.path_of(&z.models[0])).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn arch_from_names_of_both_zoos() {
        assert_eq!(arch_from_name("mobilenet_v2"), "mobilenet_v2");
        assert_eq!(arch_from_name("mobilenet_v2_int8"), "mobilenet_v2");
        assert_eq!(arch_from_name("mobilenet_v2_edgetpu"), "mobilenet_v2");
        assert_eq!(arch_from_name("mobilenet_v2_quant_edgetpu"), "mobilenet_v2");
        assert_eq!(
            arch_from_name("deeplabv3_mnv2_quant"),
            "deeplabv3_mobilenet_v2"
        );
        assert_eq!(arch_from_name("_int8"), "_int8");
        let (_d, z) = zoo();
        // No `arch` in this manifest: derived from the base name.
        assert_eq!(z.models[1].arch(), "a");
    }

    /// Every entry of the shipped manifests names its architecture, and the Coral and
    /// ONNX zoos agree on the names of the networks they share.
    #[test]
    fn shipped_manifests_carry_arch_and_pair_across_zoos() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let onnx = Zoo::load_from(root, &root.join("models/manifest.toml")).unwrap();
        let coral = Zoo::load_from(root, &root.join("configs/coral-models.toml")).unwrap();
        let fix = Zoo::load_from(root, &root.join("tests/fixtures/models/manifest.toml")).unwrap();
        for m in onnx.models.iter().chain(&coral.models) {
            assert!(!m.arch.is_empty(), "{} has no arch", m.name);
            assert_eq!(m.arch, arch_from_name(&m.name), "{}", m.name);
        }
        // Fixtures name theirs too; a fixed-batch variant is the same network.
        for m in &fix.models {
            assert!(!m.arch.is_empty(), "{} has no arch", m.name);
        }
        assert_eq!(
            fix.models
                .iter()
                .find(|m| m.name == "tiny_cnn_b1")
                .unwrap()
                .arch(),
            "tiny_cnn"
        );
        let arch = |z: &Zoo, n: &str| z.models.iter().find(|m| m.name == n).unwrap().arch();
        assert_eq!(
            arch(&coral, "mobilenet_v2_edgetpu"),
            arch(&onnx, "mobilenet_v2")
        );
        assert_eq!(
            arch(&coral, "mobilenet_v2_quant"),
            arch(&onnx, "mobilenet_v2_int8")
        );
        assert_eq!(arch(&coral, "inception_v3_edgetpu"), "inception_v3");
    }
}
