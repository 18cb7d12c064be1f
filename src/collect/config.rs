//! The `[collect]` configuration section (server side: `edgebench collect` and the
//! default store of `edgebench import`). The broker connection itself is `[mqtt]`.

use serde::{Deserialize, Serialize};

/// `[collect]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CollectConfig {
    /// Store URL: `sqlite:PATH` or `postgres://user@host:port/db`. Empty:
    /// `sqlite:$STATE_DIRECTORY/fleet.sqlite` under systemd, else `sqlite:./fleet.sqlite`.
    pub db: String,
    /// MQTT client id; the broker keeps the persistent session under it. Empty:
    /// `edgebench-collect-<hostname>`.
    pub client_id: String,
    /// Shared subscription group: several collectors with the same group split the
    /// results, summaries and telemetry (`$share/<group>/...`). Empty: not shared.
    pub share_group: String,
    /// How long the broker keeps the session (and queues messages) while the collector
    /// is away, seconds.
    pub session_expiry_s: u32,
    /// Messages written per transaction at most.
    pub batch_size: usize,
    /// A partly filled batch is written after this many milliseconds.
    pub flush_interval_ms: u64,
    /// Telemetry rows older than this many days are deleted (0: kept forever).
    pub telemetry_retention_days: u32,
    /// Rejected messages kept in the `rejects` table (newest).
    pub rejects_max: u64,
    /// Payloads larger than this are rejected (counted, first bytes kept in `rejects`).
    pub max_payload_bytes: usize,
    /// Longest wait between reconnection attempts to the store, seconds.
    pub store_backoff_max_s: f64,
}

impl Default for CollectConfig {
    fn default() -> Self {
        Self {
            db: String::new(),
            client_id: String::new(),
            share_group: String::new(),
            session_expiry_s: 7 * 24 * 3600,
            batch_size: 500,
            flush_interval_ms: 200,
            telemetry_retention_days: 30,
            rejects_max: 10_000,
            max_payload_bytes: 1 << 20,
            store_backoff_max_s: 30.0,
        }
    }
}

impl CollectConfig {
    /// The store URL: `db`, or the default described on the field.
    pub fn db_url(&self) -> String {
        if !self.db.is_empty() {
            return self.db.clone();
        }
        default_db(std::env::var_os("STATE_DIRECTORY").as_deref())
    }

    /// Checks the values; errors name the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.batch_size == 0 || self.batch_size > 10_000 {
            anyhow::bail!(
                "collect.batch_size must be 1..=10000 (is {})",
                self.batch_size
            );
        }
        if self.flush_interval_ms == 0 || self.flush_interval_ms > 60_000 {
            anyhow::bail!(
                "collect.flush_interval_ms must be 1..=60000 (is {})",
                self.flush_interval_ms
            );
        }
        if self.max_payload_bytes < 1024 {
            anyhow::bail!(
                "collect.max_payload_bytes must be at least 1024 (is {})",
                self.max_payload_bytes
            );
        }
        if !self.share_group.is_empty()
            && self
                .share_group
                .contains(|c: char| matches!(c, '/' | '+' | '#') || c.is_whitespace())
        {
            anyhow::bail!(
                "collect.share_group `{}` may not contain `/`, `+`, `#` or spaces",
                self.share_group
            );
        }
        if self.store_backoff_max_s.is_nan() || self.store_backoff_max_s <= 0.0 {
            anyhow::bail!("collect.store_backoff_max_s must be positive");
        }
        Ok(())
    }
}

/// `sqlite:<first STATE_DIRECTORY entry>/fleet.sqlite` under systemd, else
/// `sqlite:./fleet.sqlite`.
pub fn default_db(state_directory: Option<&std::ffi::OsStr>) -> String {
    match state_directory.and_then(|s| s.to_str()) {
        Some(s) if !s.is_empty() => {
            let first = s.split(':').next().unwrap_or(s);
            format!("sqlite:{}/fleet.sqlite", first.trim_end_matches('/'))
        }
        _ => "sqlite:./fleet.sqlite".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_store_follows_the_state_directory() {
        assert_eq!(default_db(None), "sqlite:./fleet.sqlite");
        assert_eq!(
            default_db(Some("/var/lib/edgebench-collect".as_ref())),
            "sqlite:/var/lib/edgebench-collect/fleet.sqlite"
        );
        assert_eq!(
            default_db(Some("/var/lib/a/:/var/lib/b".as_ref())),
            "sqlite:/var/lib/a/fleet.sqlite"
        );
        let c = CollectConfig {
            db: "postgres://x@h/db".into(),
            ..Default::default()
        };
        assert_eq!(c.db_url(), "postgres://x@h/db");
    }

    #[test]
    fn validation_names_the_key() {
        let mut c = CollectConfig::default();
        c.validate().unwrap();
        c.share_group = "a/b".into();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("collect.share_group"));
        c.share_group = String::new();
        c.batch_size = 0;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("collect.batch_size"));
    }
}
