//! Platforms: what a gain compares. A platform is (board, backend, provider or
//! delegate), plus the thread count and runtime version where results of the same
//! (board, backend, provider) differ in them (two thread settings or two ONNX Runtime
//! releases on one board are two platforms). Precision is not part of it: gains pair
//! the same architecture, precision and batch, so every precision is compared within
//! itself.

use std::collections::BTreeMap;

use serde::Serialize;

use super::load::{Names, Point, Sym};
use super::ReportError;

/// What identifies a platform inside one report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PlatformKey {
    pub board: Sym,
    pub backend: Sym,
    pub ep: Sym,
    /// `u32::MAX` when threads do not tell platforms apart.
    pub threads: u32,
    /// `Sym::MAX` when the runtime version does not tell platforms apart.
    pub runtime_version: Sym,
}

/// One platform, as shown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Platform {
    pub board: String,
    pub backend: String,
    /// Execution provider (ONNX Runtime) or delegate (TFLite).
    pub ep: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_version: Option<String>,
    /// `board/backend/ep`, then ` threads=N` and ` runtime=V` where they tell apart.
    pub label: String,
    /// Result records (after `--where`).
    pub results: usize,
    /// Distinct devices that produced them.
    pub devices: usize,
}

/// The platforms of a set of points, and each point's platform index.
#[derive(Debug, Clone)]
pub struct Platforms {
    pub list: Vec<Platform>,
    pub keys: Vec<PlatformKey>,
    /// Platform index of each point, in point order.
    pub of_point: Vec<u32>,
}

/// Finds the platforms. Threads and runtime version join the key only for the
/// (board, backend, provider) groups where they take more than one value.
pub fn platforms(points: &[Point], names: &Names) -> Platforms {
    type Base = (Sym, Sym, Sym);
    let mut threads: BTreeMap<Base, std::collections::BTreeSet<u32>> = BTreeMap::new();
    let mut versions: BTreeMap<Base, std::collections::BTreeSet<Sym>> = BTreeMap::new();
    // Consecutive points mostly come from the same run: skip repeats cheaply.
    let mut last = None;
    for p in points {
        let b = (p.board, p.backend, p.ep);
        if last == Some((b, p.threads, p.runtime_version)) {
            continue;
        }
        last = Some((b, p.threads, p.runtime_version));
        threads.entry(b).or_default().insert(p.threads);
        versions.entry(b).or_default().insert(p.runtime_version);
    }
    let mut index: BTreeMap<PlatformKey, u32> = BTreeMap::new();
    let mut keys: Vec<PlatformKey> = Vec::new();
    let mut devices: Vec<std::collections::BTreeSet<Sym>> = Vec::new();
    let mut counts: Vec<usize> = Vec::new();
    let mut of_point = Vec::with_capacity(points.len());
    let mut last = None;
    for p in points {
        let raw = (
            p.board,
            p.backend,
            p.ep,
            p.threads,
            p.runtime_version,
            p.device_id,
        );
        if let Some((r, i)) = last {
            if r == raw {
                counts[i as usize] += 1;
                of_point.push(i);
                continue;
            }
        }
        let b = (p.board, p.backend, p.ep);
        let key = PlatformKey {
            board: p.board,
            backend: p.backend,
            ep: p.ep,
            threads: if threads[&b].len() > 1 {
                p.threads
            } else {
                u32::MAX
            },
            runtime_version: if versions[&b].len() > 1 {
                p.runtime_version
            } else {
                Sym::MAX
            },
        };
        let i = *index.entry(key).or_insert_with(|| {
            keys.push(key);
            devices.push(Default::default());
            counts.push(0);
            keys.len() as u32 - 1
        });
        devices[i as usize].insert(p.device_id);
        counts[i as usize] += 1;
        of_point.push(i);
        last = Some((raw, i));
    }
    let list = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let threads = (k.threads != u32::MAX).then_some(k.threads);
            let runtime_version =
                (k.runtime_version != Sym::MAX).then(|| names.get(k.runtime_version).to_string());
            let mut label = format!(
                "{}/{}/{}",
                names.get(k.board),
                names.get(k.backend),
                names.get(k.ep)
            );
            if let Some(t) = threads {
                label.push_str(&format!(" threads={t}"));
            }
            if let Some(v) = &runtime_version {
                label.push_str(&format!(" runtime={v}"));
            }
            Platform {
                board: names.get(k.board).into(),
                backend: names.get(k.backend).into(),
                ep: names.get(k.ep).into(),
                threads,
                runtime_version,
                label,
                results: counts[i],
                devices: devices[i].len(),
            }
        })
        .collect();
    Platforms {
        list,
        keys,
        of_point,
    }
}

/// A `--baseline` selector: `key=value[,key=value...]` over board, backend, ep
/// (also `provider`, `delegate`), threads and runtime (`runtime_version`).
#[derive(Debug, Clone, PartialEq)]
pub struct Selector(pub Vec<(String, String)>);

impl std::str::FromStr for Selector {
    type Err = String;
    fn from_str(s: &str) -> Result<Selector, String> {
        let mut v = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, val) = part.split_once('=').ok_or_else(|| {
                format!("`{part}` is not key=value (e.g. board=raspberrypi5,ep=cpu)")
            })?;
            let key = match k.trim() {
                "board" => "board",
                "backend" => "backend",
                "ep" | "provider" | "delegate" => "ep",
                "threads" => "threads",
                "runtime" | "runtime_version" => "runtime_version",
                other => {
                    return Err(format!(
                        "unknown baseline key `{other}` (known: board, backend, ep, provider, delegate, threads, runtime)"
                    ))
                }
            };
            v.push((key.to_string(), val.trim().to_string()));
        }
        if v.is_empty() {
            return Err("empty baseline selector".into());
        }
        Ok(Selector(v))
    }
}

impl Selector {
    fn matches(&self, p: &Platform) -> bool {
        self.0.iter().all(|(k, v)| match k.as_str() {
            "board" => &p.board == v,
            "backend" => &p.backend == v,
            "ep" => &p.ep == v,
            "threads" => p.threads.map(|t| t.to_string()).as_deref() == Some(v),
            "runtime_version" => p.runtime_version.as_deref() == Some(v.as_str()),
            _ => false,
        })
    }

    /// The one platform this selects. Errors ([`ReportError::Selection`]) list the
    /// platforms present when none matches, or the matches when several do.
    pub fn pick(&self, list: &[Platform]) -> Result<usize, ReportError> {
        let shown = self
            .0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let m: Vec<usize> = (0..list.len())
            .filter(|&i| self.matches(&list[i]))
            .collect();
        match m.as_slice() {
            [one] => Ok(*one),
            [] => Err(ReportError::Selection(format!(
                "baseline `{shown}` matches no platform; platforms present: {}",
                list.iter().map(|p| p.label.as_str()).collect::<Vec<_>>().join("; ")
            ))),
            many => Err(ReportError::Selection(format!(
                "baseline `{shown}` is ambiguous, it matches {} platforms: {} (add keys such as threads= or runtime=)",
                many.len(),
                many.iter().map(|&i| list[i].label.as_str()).collect::<Vec<_>>().join("; ")
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(names: &mut Names, board: &str, ep: &str, threads: u32, dev: &str) -> Point {
        Point {
            board: names.intern(board),
            backend: names.intern("ort"),
            ep: names.intern(ep),
            precision: names.intern("fp32"),
            model: names.intern("m"),
            arch: names.intern("m"),
            batch_mode: names.intern("native"),
            device_id: names.intern(dev),
            runtime_version: names.intern("1.32.0"),
            threads,
            batch: 1,
            ok: true,
            throttled: false,
            ts: 0,
            p50: 1.0,
            p99: 1.0,
            p50_lo: 1.0,
            p50_hi: 1.0,
            throughput: 1.0,
            throughput_lo: f64::NAN,
            throughput_hi: f64::NAN,
            temp_c_max: f64::NAN,
            power_w_mean: f64::NAN,
        }
    }

    #[test]
    fn threads_tell_platforms_apart_only_where_they_differ() {
        let mut n = Names::default();
        let pts = vec![
            point(&mut n, "rpi5", "cpu", 1, "a"),
            point(&mut n, "rpi5", "cpu", 4, "a"),
            point(&mut n, "orin", "cuda", 0, "x"),
            point(&mut n, "orin", "cuda", 0, "y"),
        ];
        let p = platforms(&pts, &n);
        let labels: Vec<&str> = p.list.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "rpi5/ort/cpu threads=1",
                "rpi5/ort/cpu threads=4",
                "orin/ort/cuda"
            ]
        );
        assert_eq!(p.of_point, [0, 1, 2, 2]);
        assert_eq!((p.list[2].results, p.list[2].devices), (2, 2));

        let sel: Selector = "board=orin".parse().unwrap();
        assert_eq!(sel.pick(&p.list).unwrap(), 2);
        let sel: Selector = "board=rpi5,provider=cpu,threads=4".parse().unwrap();
        assert_eq!(sel.pick(&p.list).unwrap(), 1);
        let e = "board=rpi5"
            .parse::<Selector>()
            .unwrap()
            .pick(&p.list)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ambiguous") && e.contains("rpi5/ort/cpu threads=1; rpi5/ort/cpu threads=4"),
            "{e}"
        );
        let e = "board=nano"
            .parse::<Selector>()
            .unwrap()
            .pick(&p.list)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("matches no platform") && e.contains("orin/ort/cuda"),
            "{e}"
        );
        assert!("colour=red".parse::<Selector>().is_err());
    }
}
