//! Records the broker refused (a PUBACK with an error reason: ACL, quota, packet
//! size): kept in a bounded JSON Lines file next to the store, so the queue can move
//! on without losing what was measured. One file of at most `max_bytes`, plus the
//! previous one (`.1`) after a rotation.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};

/// File name inside the store directory.
pub const FILE: &str = "deadletter.jsonl";
/// Default bound of one dead-letter file.
pub const MAX_BYTES: u64 = 4 << 20;

/// The dead-letter file of one store.
#[derive(Debug)]
pub struct DeadLetters {
    path: PathBuf,
    max_bytes: u64,
    /// Records put here since the start.
    pub count: AtomicU64,
}

impl DeadLetters {
    pub fn new(store_dir: &Path, max_bytes: u64) -> DeadLetters {
        DeadLetters {
            path: store_dir.join(FILE),
            max_bytes,
            count: AtomicU64::new(0),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one refused record with the broker's reason.
    pub fn add(&self, ts_ms: i64, topic: &str, reason: &str, record: &str) -> Result<()> {
        let record: serde_json::Value = serde_json::from_str(record)
            .unwrap_or_else(|_| serde_json::Value::String(record.to_string()));
        let line = serde_json::json!({
            "ts": ts_ms,
            "topic": topic,
            "reason": reason,
            "record": record,
        })
        .to_string()
            + "\n";
        let size = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        if size > 0 && size + line.len() as u64 > self.max_bytes {
            let old = self.path.with_extension("jsonl.1");
            std::fs::rename(&self.path, &old)
                .with_context(|| format!("cannot rotate {}", self.path.display()))?;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .with_context(|| format!("cannot open {}", self.path.display()))?;
        f.write_all(line.as_bytes())
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        self.count.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_reason_and_stays_bounded() {
        let d = tempfile::tempdir().unwrap();
        let dl = DeadLetters::new(d.path(), 400);
        let rec = r#"{"record":"result","run_id":"s-0001"}"#;
        dl.add(1, "t/result", "NotAuthorized", rec).unwrap();
        let text = std::fs::read_to_string(dl.path()).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["reason"], "NotAuthorized");
        assert_eq!(v["record"]["run_id"], "s-0001");
        for _ in 0..20 {
            dl.add(2, "t/result", "QuotaExceeded", rec).unwrap();
        }
        assert_eq!(dl.count.load(Ordering::Relaxed), 21);
        let cur = std::fs::metadata(dl.path()).unwrap().len();
        let old = std::fs::metadata(d.path().join("deadletter.jsonl.1"))
            .unwrap()
            .len();
        assert!(cur <= 400 && old <= 400, "{cur} {old}");
    }
}
