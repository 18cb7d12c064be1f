//! Out-of-memory as a failed configuration, never an abort: the buffers a batch needs
//! are checked against `MemAvailable` (read under the injected root) before anything
//! is allocated, and our own buffers are allocated fallibly (`try_reserve`), so a batch
//! too large for the board fails its record and the sweep (and daemon) go on.

use std::path::Path;

use super::BackendError;

/// Headroom kept free: the runtime needs working memory beyond inputs and outputs
/// (activations, arena), so a batch whose buffers take more than this fraction of
/// `MemAvailable` is refused.
pub const MAX_FRACTION_OF_AVAILABLE: f64 = 0.8;

/// `MemAvailable` in bytes from `/proc/meminfo` text (the kernel writes kB).
pub fn mem_available_bytes(meminfo: &str) -> Option<u64> {
    meminfo.lines().find_map(|l| {
        let rest = l.strip_prefix("MemAvailable:")?;
        let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        kb.checked_mul(1024)
    })
}

/// Refuses `needed` bytes of buffers for `what` when they exceed
/// [`MAX_FRACTION_OF_AVAILABLE`] of `MemAvailable` under `root` (`<root>/proc/meminfo`).
/// An unreadable meminfo skips the check (the fallible allocations still guard).
pub fn check_fits(root: &Path, needed: u64, what: &str) -> Result<(), BackendError> {
    let path = root.join("proc/meminfo");
    let Some(avail) = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| mem_available_bytes(&t))
    else {
        return Ok(());
    };
    if needed as f64 > avail as f64 * MAX_FRACTION_OF_AVAILABLE {
        return Err(BackendError::Failed(format!(
            "out of memory: {what} needs {} MiB of input/output buffers but {} reports MemAvailable {} MiB \
             (at most {:.0} % of it is used); not allocated, try a smaller batch",
            needed.div_ceil(1 << 20),
            path.display(),
            avail >> 20,
            MAX_FRACTION_OF_AVAILABLE * 100.0
        )));
    }
    Ok(())
}

/// `len` elements from `fill`, allocated fallibly: an allocation failure is an error
/// naming `what`, not an abort.
pub fn try_collect<T>(
    len: usize,
    fill: impl Iterator<Item = T>,
    what: &str,
) -> Result<Vec<T>, BackendError> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|e| {
        BackendError::Failed(format!(
            "out of memory: cannot allocate {len} elements for {what}: {e}"
        ))
    })?;
    v.extend(fill.take(len));
    Ok(v)
}

/// Product of a shape's axes times the element size, checked (a huge batch must not
/// wrap around).
pub fn shape_bytes(shape: &[i64], elem: usize) -> Option<u64> {
    shape.iter().try_fold(elem as u64, |acc, &d| {
        u64::try_from(d).ok().and_then(|d| acc.checked_mul(d))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mem_available() {
        let t = "MemTotal:        8039416 kB\nMemFree:  100 kB\nMemAvailable:    4000000 kB\n";
        assert_eq!(mem_available_bytes(t), Some(4_000_000 * 1024));
        assert_eq!(mem_available_bytes("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn refuses_what_does_not_fit_and_names_the_file() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("proc")).unwrap();
        std::fs::write(d.path().join("proc/meminfo"), "MemAvailable: 1024 kB\n").unwrap();
        assert!(check_fits(d.path(), 100 * 1024, "m").is_ok());
        let e = check_fits(d.path(), 1024 * 1024, "model x batch 9")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("out of memory") && e.contains("model x batch 9") && e.contains("meminfo"),
            "{e}"
        );
        // No meminfo: no check.
        assert!(check_fits(&d.path().join("nowhere"), u64::MAX, "m").is_ok());
    }

    #[test]
    fn fallible_allocation_reports_instead_of_aborting() {
        let e = try_collect(usize::MAX / 2, std::iter::repeat(0u64), "input")
            .unwrap_err()
            .to_string();
        assert!(e.contains("out of memory") && e.contains("input"), "{e}");
        assert_eq!(
            try_collect(3, std::iter::repeat(7u8), "x").unwrap(),
            vec![7, 7, 7]
        );
    }

    #[test]
    fn shape_bytes_checks_overflow() {
        assert_eq!(shape_bytes(&[2, 3], 4), Some(24));
        assert_eq!(shape_bytes(&[i64::MAX, 4], 4), None);
        assert_eq!(shape_bytes(&[-1, 4], 4), None);
    }
}
