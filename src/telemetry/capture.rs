//! `edgebench probe --capture DIR`: copies the files the probes read into a tree that
//! `--sysroot DIR` reads back with the same results. Symlinks on the way (`/sys/class/*`
//! entries, `/proc/device-tree`) are recreated as symlinks with the same targets, so
//! the capture has the kernel's layout; only files that were read are copied, so a
//! sleeping device's sensors are neither read nor copied.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::sysroot::SysRoot;

/// What a capture wrote.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct CaptureStats {
    pub files: usize,
    pub links: usize,
    /// Files read by the probes that could not be read again for the copy.
    pub skipped: Vec<String>,
}

/// Copies `paths` (logical, as on the board) from `root` into `dest`, which must be
/// missing or empty.
pub fn capture(root: &SysRoot, paths: &[String], dest: &Path) -> Result<CaptureStats> {
    if dest.exists() {
        let non_empty = fs::read_dir(dest)
            .with_context(|| format!("capture directory {}", dest.display()))?
            .next()
            .is_some();
        if non_empty {
            bail!(
                "capture directory {} is not empty; give a new or empty directory",
                dest.display()
            );
        }
    }
    fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    let mut stats = CaptureStats::default();
    for logical in paths {
        let mut link_err = None;
        let resolved = root.walk(logical, &mut |link, target| {
            let at = dest.join(link.trim_start_matches('/'));
            if fs::symlink_metadata(&at).is_ok() {
                return;
            }
            let made = at
                .parent()
                .map_or(Ok(()), fs::create_dir_all)
                .and_then(|_| symlink(target, &at));
            match made {
                Ok(()) => stats.links += 1,
                Err(e) => link_err = Some(format!("{}: {e}", at.display())),
            }
        });
        if let Some(e) = link_err {
            bail!("capture: cannot create symlink {e}");
        }
        let src = root.root().join(resolved.trim_start_matches('/'));
        let bytes = match fs::read(&src) {
            Ok(b) => b,
            Err(_) => {
                stats.skipped.push(logical.clone());
                continue;
            }
        };
        let out = dest.join(resolved.trim_start_matches('/'));
        if let Some(parent) = out.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        fs::write(&out, bytes).with_context(|| format!("writing {}", out.display()))?;
        stats.files += 1;
    }
    Ok(stats)
}
