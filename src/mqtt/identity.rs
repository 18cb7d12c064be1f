//! Who this board is on the broker: a stable hash of `/etc/machine-id`, so boards
//! flashed from one image (same hostname, same configuration) still get distinct
//! client ids and default device ids. Reads under an injected root (tests, sysroots).

use std::path::Path;

use sha2::{Digest, Sha256};

/// Hex digits of the machine hash used in ids.
const HASH_LEN: usize = 8;

/// A short hash of the machine id under `root` (`etc/machine-id`, else
/// `var/lib/dbus/machine-id`); `None` when neither holds an id. The raw machine id
/// never leaves the board (it is a secret per machine-id(5)); the hash is salted.
pub fn machine_hash(root: &Path) -> Option<String> {
    ["etc/machine-id", "var/lib/dbus/machine-id"]
        .iter()
        .find_map(|rel| {
            let id = std::fs::read_to_string(root.join(rel)).ok()?;
            let id = id.trim();
            (!id.is_empty() && id != "uninitialized").then(|| id.to_string())
        })
        .map(|id| {
            let digest = Sha256::digest(format!("edgebench:{id}").as_bytes());
            digest
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()[..HASH_LEN]
                .to_string()
        })
}

/// The MQTT client id: `edgebench-<device id>-<machine hash>` (stable across
/// restarts, so the broker's persistent session is found again), or without the
/// hash when the machine has no id.
pub fn client_id(device_id: &str, machine: Option<&str>) -> String {
    match machine {
        Some(h) if !device_id.ends_with(h) => format!("edgebench-{device_id}-{h}"),
        _ => format!("edgebench-{device_id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_the_machine_id_under_the_root() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(machine_hash(d.path()), None);
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        std::fs::write(d.path().join("etc/machine-id"), "uninitialized\n").unwrap();
        assert_eq!(machine_hash(d.path()), None, "first-boot placeholder");
        std::fs::write(
            d.path().join("etc/machine-id"),
            "0123456789abcdef0123456789abcdef\n",
        )
        .unwrap();
        let a = machine_hash(d.path()).unwrap();
        assert_eq!(a.len(), HASH_LEN);
        assert!(!"0123456789abcdef0123456789abcdef".contains(&a), "hashed");
        std::fs::write(
            d.path().join("etc/machine-id"),
            "fedcba9876543210fedcba9876543210\n",
        )
        .unwrap();
        let b = machine_hash(d.path()).unwrap();
        assert_ne!(a, b, "two machines, two hashes");
        assert_eq!(client_id("pi4", Some(&a)), format!("edgebench-pi4-{a}"));
        assert_eq!(
            client_id(&format!("pi4-{a}"), Some(&a)),
            format!("edgebench-pi4-{a}")
        );
        assert_eq!(client_id("pi4", None), "edgebench-pi4");
    }
}
