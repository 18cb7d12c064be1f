//! Request ids already answered, with their reply, kept across restarts: a command
//! delivered again (QoS 1 redelivery, a persistent session replaying it after a
//! restart, a client retrying) is answered with the original reply and not run
//! twice. A retry after `busy` is a new attempt only under a new id.
//!
//! Stored as JSON Lines (`{"id": ..., "reply": ...}`) under the store directory;
//! bounded: the newest `capacity` ids are kept, and the file is rewritten to them
//! when it has grown to twice that. Lines are not fsynced: a power cut may forget
//! the last few ids (then a redelivered command is answered anew).

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// File name inside the store directory.
pub const FILE: &str = "replies.jsonl";

/// Answered request ids and their reply payloads.
pub struct Replies {
    path: PathBuf,
    capacity: usize,
    order: VecDeque<String>,
    map: HashMap<String, String>,
    /// Lines in the file (rewritten at `2 * capacity`).
    lines: usize,
}

impl Replies {
    /// Loads the ids remembered under `dir` (a missing or damaged file starts empty;
    /// damaged lines are skipped).
    pub fn open(dir: &Path, capacity: usize) -> Replies {
        let mut r = Replies {
            path: dir.join(FILE),
            capacity: capacity.max(1),
            order: VecDeque::new(),
            map: HashMap::new(),
            lines: 0,
        };
        if let Ok(text) = std::fs::read_to_string(&r.path) {
            for line in text.lines() {
                r.lines += 1;
                let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                    continue;
                };
                if let (Some(id), Some(reply)) = (v["id"].as_str(), v["reply"].as_str()) {
                    r.remember(id.to_string(), reply.to_string());
                }
            }
        }
        r
    }

    /// The reply already sent for `id`.
    pub fn get(&self, id: &str) -> Option<&str> {
        self.map.get(id).map(String::as_str)
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    fn remember(&mut self, id: String, reply: String) {
        if self.map.insert(id.clone(), reply).is_none() {
            self.order.push_back(id);
        }
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }

    /// Remembers the reply to `id` and appends it to the file.
    pub fn insert(&mut self, id: &str, reply: &str) -> Result<()> {
        self.remember(id.to_string(), reply.to_string());
        if self.lines + 1 >= 2 * self.capacity {
            return self.rewrite();
        }
        let line = serde_json::json!({"id": id, "reply": reply}).to_string() + "\n";
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .with_context(|| format!("cannot open {}", self.path.display()))?;
        f.write_all(line.as_bytes())
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        self.lines += 1;
        Ok(())
    }

    /// Rewrites the file with the ids kept (write a temp file, rename over).
    fn rewrite(&mut self) -> Result<()> {
        let tmp = self.path.with_extension("jsonl.tmp");
        let mut text = String::new();
        for id in &self.order {
            let reply = &self.map[id];
            text += &serde_json::json!({"id": id, "reply": reply}).to_string();
            text.push('\n');
        }
        std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("cannot replace {}", self.path.display()))?;
        self.lines = self.order.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_across_a_reopen_and_bounded() {
        let d = tempfile::tempdir().unwrap();
        let mut r = Replies::open(d.path(), 3);
        assert!(r.get("a").is_none());
        r.insert("a", r#"{"code":"started"}"#).unwrap();
        r.insert("b", r#"{"code":"busy"}"#).unwrap();
        let r2 = Replies::open(d.path(), 3);
        assert_eq!(r2.get("a"), Some(r#"{"code":"started"}"#));
        assert_eq!(r2.get("b"), Some(r#"{"code":"busy"}"#));
        let mut r = r2;
        for i in 0..20 {
            r.insert(&format!("id{i}"), "{}").unwrap();
        }
        assert_eq!(r.len(), 3);
        assert!(r.get("a").is_none() && r.get("id19").is_some());
        let lines = std::fs::read_to_string(d.path().join(FILE))
            .unwrap()
            .lines()
            .count();
        assert!(lines < 6, "the file is rewritten: {lines} lines");
        let r3 = Replies::open(d.path(), 3);
        assert_eq!(r3.len(), 3);
        assert!(r3.get("id19").is_some() && r3.get("id16").is_none());
    }

    #[test]
    fn damaged_lines_are_skipped() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join(FILE),
            "{\"id\":\"x\",\"reply\":\"r\"}\n\u{0}\u{0}garbage\n{\"id\":\"y\"",
        )
        .unwrap();
        let r = Replies::open(d.path(), 10);
        assert_eq!(r.get("x"), Some("r"));
        assert_eq!(r.len(), 1);
    }
}
