//! Per-CPU busy fraction between scrapes, from `/proc/stat` (USER_HZ jiffies).
//!
//! Used to judge frequency: a CPU that is idle (a GPU or Edge TPU run waiting on its
//! accelerator) is clocked down by its governor by design, so only busy CPUs are held
//! to their cap. Deltas need two readings: the first scrape of a CPU gives no value.

use std::fs::File;
use std::os::unix::fs::FileExt;

use super::sysroot::SysRoot;

const STAT: &str = "/proc/stat";

/// `/proc/stat` kept open; busy fractions per CPU number.
#[derive(Debug, Default)]
pub struct CpuLoad {
    file: Option<File>,
    buf: Vec<u8>,
    /// Previous (busy, total) jiffies per CPU number.
    prev: Vec<Option<(u64, u64)>>,
    /// Busy fraction (0..=1) per CPU number since the previous read.
    busy: Vec<Option<f64>>,
}

impl CpuLoad {
    /// Opens `/proc/stat` under `root`; None when it is not there.
    pub fn open(root: &SysRoot) -> Option<CpuLoad> {
        let text = root.read_string(STAT).ok()?;
        let cpus = text
            .lines()
            .filter_map(|l| parse_cpu_line(l.as_bytes()))
            .map(|(n, _, _)| n + 1)
            .max()?;
        let file = File::open(root.path(STAT)).ok()?;
        // The per-CPU lines come first; the rest (interrupt counts) can be long and is
        // not needed, so the buffer covers the CPU lines only.
        let cpu_bytes = text
            .lines()
            .take_while(|l| l.starts_with("cpu"))
            .map(|l| l.len() + 1)
            .sum::<usize>();
        Some(CpuLoad {
            file: Some(file),
            buf: vec![0; cpu_bytes * 2 + 256],
            prev: vec![None; cpus],
            busy: vec![None; cpus],
        })
    }

    /// Reads the counters and updates the busy fractions.
    pub fn refresh(&mut self) {
        let Some(f) = &self.file else { return };
        let n = match f.read_at(&mut self.buf, 0) {
            Ok(n) => n,
            Err(_) => {
                self.busy.iter_mut().for_each(|b| *b = None);
                return;
            }
        };
        self.busy.iter_mut().for_each(|b| *b = None);
        for line in self.buf[..n].split(|b| *b == b'\n') {
            let Some((cpu, busy, total)) = parse_cpu_line(line) else {
                continue;
            };
            let Some(slot) = self.prev.get_mut(cpu) else {
                continue;
            };
            if let Some((pb, pt)) = *slot {
                let dt = total.saturating_sub(pt);
                if dt > 0 {
                    self.busy[cpu] = Some((busy.saturating_sub(pb) as f64 / dt as f64).min(1.0));
                }
            }
            *slot = Some((busy, total));
        }
    }

    /// Busiest CPU among `cpus`, as a fraction; None when none is known.
    pub fn busiest(&self, cpus: &[u32]) -> Option<f64> {
        cpus.iter()
            .filter_map(|&c| self.busy.get(c as usize).copied().flatten())
            .fold(None, |m: Option<f64>, b| Some(m.map_or(b, |m| m.max(b))))
    }
}

/// `cpu3 user nice system idle iowait irq softirq steal ...` -> (3, busy, total).
/// The aggregate `cpu ` line is skipped. Guest time is already inside user time.
pub fn parse_cpu_line(line: &[u8]) -> Option<(usize, u64, u64)> {
    let rest = line.strip_prefix(b"cpu")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let cpu: usize = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    let mut f = [0u64; 8];
    let mut got = 0;
    for (i, word) in rest[digits..]
        .split(|b| *b == b' ')
        .filter(|w| !w.is_empty())
        .take(8)
        .enumerate()
    {
        f[i] = std::str::from_utf8(word).ok()?.parse().ok()?;
        got = i + 1;
    }
    if got < 4 {
        return None;
    }
    let [user, nice, system, idle, iowait, irq, softirq, steal] = f;
    let busy = user + nice + system + irq + softirq + steal;
    Some((cpu, busy, busy + idle + iowait))
}

/// `0 1 2 3` or `0-3,6` (cpufreq `related_cpus` uses spaces) -> CPU numbers.
pub fn parse_cpu_list(s: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for part in s.split([' ', ',']).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                    out.extend(a..=b);
                }
            }
            None => out.extend(part.parse::<u32>().ok()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines() {
        assert_eq!(
            parse_cpu_line(b"cpu2 100 5 50 800 10 3 2 0 0 0"),
            Some((2, 160, 970))
        );
        assert_eq!(parse_cpu_line(b"cpu  400 20 200 3200 40 12 8 0 0 0"), None);
        assert_eq!(parse_cpu_line(b"intr 12345 0 0"), None);
        assert_eq!(parse_cpu_list("0 1 2 3"), vec![0, 1, 2, 3]);
        assert_eq!(parse_cpu_list("0-2,6"), vec![0, 1, 2, 6]);
    }

    #[test]
    fn busy_fraction_between_two_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("proc")).expect("mkdir");
        let stat = dir.path().join("proc/stat");
        std::fs::write(
            &stat,
            "cpu  0 0 0 0\ncpu0 100 0 0 900 0 0 0 0\ncpu1 100 0 0 900 0 0 0 0\nintr 1\n",
        )
        .expect("write");
        let mut l = CpuLoad::open(&SysRoot::new(dir.path())).expect("open");
        l.refresh();
        assert_eq!(l.busiest(&[0, 1]), None);
        // cpu0 fully busy, cpu1 idle for 100 jiffies.
        std::fs::write(
            &stat,
            "cpu  0 0 0 0\ncpu0 200 0 0 900 0 0 0 0\ncpu1 100 0 0 1000 0 0 0 0\nintr 1\n",
        )
        .expect("write");
        l.refresh();
        assert_eq!(l.busiest(&[0]), Some(1.0));
        assert_eq!(l.busiest(&[1]), Some(0.0));
        assert_eq!(l.busiest(&[0, 1]), Some(1.0));
    }
}
