//! MQTT topic names (DESIGN.md section 6). Pure: building and parsing only.
//!
//! Per-board topics sit under `<topic_prefix>/<device_id>`; fleet commands under
//! `<topic_prefix>/all/cmd/<verb>`, which is why `all` cannot be a device id.

use anyhow::{bail, Result};

/// Device id reserved for fleet-wide commands.
pub const FLEET_ID: &str = "all";

/// The topics of one board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    /// `<topic_prefix>/<device_id>`
    board: String,
    /// `<topic_prefix>/all`
    fleet: String,
}

impl Topics {
    /// Topics for `device_id` under `topic_prefix`. The id must already be a valid
    /// device id (`[a-z0-9-]`); `all` is refused because it is the fleet address.
    pub fn new(topic_prefix: &str, device_id: &str) -> Result<Topics> {
        if device_id == FLEET_ID {
            bail!("device id `{FLEET_ID}` is reserved for fleet commands ({topic_prefix}/{FLEET_ID}/cmd/...)");
        }
        Ok(Topics {
            board: format!("{topic_prefix}/{device_id}"),
            fleet: format!("{topic_prefix}/{FLEET_ID}"),
        })
    }

    /// `<p>/status`: `online` / `offline`, retained, also the Last Will.
    pub fn status(&self) -> String {
        format!("{}/status", self.board)
    }
    /// `<p>/info`: board description, retained.
    pub fn info(&self) -> String {
        format!("{}/info", self.board)
    }
    /// `<p>/reply`: command replies.
    pub fn reply(&self) -> String {
        format!("{}/reply", self.board)
    }
    /// `<p>/sweep/state`: sweep progress, retained.
    pub fn sweep_state(&self) -> String {
        format!("{}/sweep/state", self.board)
    }
    /// `<p>/result`: one result record per message.
    pub fn result(&self) -> String {
        format!("{}/result", self.board)
    }
    /// `<p>/summary`: one sweep summary record per message.
    pub fn summary(&self) -> String {
        format!("{}/summary", self.board)
    }
    /// `<p>/telemetry`: periodic flat telemetry, QoS 0.
    pub fn telemetry(&self) -> String {
        format!("{}/telemetry", self.board)
    }

    /// The two command filters to subscribe to: this board's and the fleet's.
    pub fn command_filters(&self) -> [String; 2] {
        [
            format!("{}/cmd/+", self.board),
            format!("{}/cmd/+", self.fleet),
        ]
    }

    /// Whether `topic` is under the fleet's `<topic_prefix>/all/`.
    pub fn is_fleet(&self, topic: &str) -> bool {
        topic
            .strip_prefix(self.fleet.as_str())
            .is_some_and(|r| r.starts_with('/'))
    }

    /// Whether an MQTT 5 response topic may be used: under one of `allowed`
    /// (level-wise), or, when `allowed` is empty, anywhere outside the edgebench tree
    /// (`<topic_prefix>/`) except this board's own `<p>/reply/...`. Never another
    /// board's or the fleet's topics.
    pub fn response_topic_allowed(&self, topic: &str, allowed: &[String]) -> bool {
        let under = |t: &str, p: &str| {
            let p = p.trim_end_matches('/');
            t == p || t.strip_prefix(p).is_some_and(|r| r.starts_with('/'))
        };
        let tree = self
            .fleet
            .strip_suffix(FLEET_ID)
            .unwrap_or(&self.fleet)
            .trim_end_matches('/');
        if under(topic, &format!("{}/reply", self.board)) {
            return true;
        }
        if under(topic, tree) {
            return false;
        }
        if allowed.is_empty() {
            return true;
        }
        allowed.iter().any(|p| !p.is_empty() && under(topic, p))
    }

    /// The verb of a command topic (`<p>/cmd/<verb>` or the fleet's), else `None`.
    pub fn command_verb<'a>(&self, topic: &'a str) -> Option<&'a str> {
        [&self.board, &self.fleet].into_iter().find_map(|base| {
            let rest = topic.strip_prefix(base.as_str())?.strip_prefix("/cmd/")?;
            (!rest.is_empty() && !rest.contains('/')).then_some(rest)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> Topics {
        Topics::new("edgebench/v1", "jetson-01").unwrap()
    }

    #[test]
    fn response_topics_stay_out_of_other_boards() {
        let t = t();
        let none: Vec<String> = Vec::new();
        assert!(t.response_topic_allowed("app/replies/1", &none));
        assert!(t.response_topic_allowed("edgebench/v1/jetson-01/reply/app", &none));
        assert!(!t.response_topic_allowed("edgebench/v1/jetson-02/reply", &none));
        assert!(!t.response_topic_allowed("edgebench/v1/jetson-01/result", &none));
        assert!(!t.response_topic_allowed("edgebench/v1/all/reply", &none));
        assert!(t.response_topic_allowed("edgebench/v1x/other", &none));
        let only = vec!["apps/edgebench/".to_string()];
        assert!(t.response_topic_allowed("apps/edgebench/r1", &only));
        assert!(!t.response_topic_allowed("apps/edgebenchx/r1", &only));
        assert!(!t.response_topic_allowed("app/replies/1", &only));
        assert!(t.response_topic_allowed("edgebench/v1/jetson-01/reply/x", &only));
        assert!(t.is_fleet("edgebench/v1/all/cmd/status-get"));
        assert!(!t.is_fleet("edgebench/v1/jetson-01/cmd/status-get"));
        assert!(!t.is_fleet("edgebench/v1/allx/cmd/status-get"));
    }

    #[test]
    fn builds_the_contract_topics() {
        let t = t();
        assert_eq!(t.status(), "edgebench/v1/jetson-01/status");
        assert_eq!(t.sweep_state(), "edgebench/v1/jetson-01/sweep/state");
        assert_eq!(t.reply(), "edgebench/v1/jetson-01/reply");
        assert_eq!(
            t.command_filters(),
            [
                "edgebench/v1/jetson-01/cmd/+".to_string(),
                "edgebench/v1/all/cmd/+".to_string()
            ]
        );
    }

    #[test]
    fn parses_verbs_of_own_and_fleet_topics_only() {
        let t = t();
        assert_eq!(
            t.command_verb("edgebench/v1/jetson-01/cmd/sweep-start"),
            Some("sweep-start")
        );
        assert_eq!(
            t.command_verb("edgebench/v1/all/cmd/status-get"),
            Some("status-get")
        );
        assert_eq!(t.command_verb("edgebench/v1/other/cmd/sweep-start"), None);
        assert_eq!(t.command_verb("edgebench/v1/jetson-01/cmd/"), None);
        assert_eq!(t.command_verb("edgebench/v1/jetson-01/cmd/a/b"), None);
        assert_eq!(t.command_verb("edgebench/v1/jetson-01/reply"), None);
        assert_eq!(t.command_verb("edgebench/v1/jetson-012/cmd/x"), None);
    }

    #[test]
    fn fleet_id_is_reserved() {
        assert!(Topics::new("edgebench/v1", "all").is_err());
    }
}
