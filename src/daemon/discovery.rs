//! Home Assistant discovery for the link: the retained configs when
//! `[homeassistant] discovery` is on, or the empty payloads that remove what this board
//! announced before it was turned off. Which topics were announced is kept in
//! `<store.dir>/homeassistant.topics`, so a board that never used discovery publishes
//! nothing under Home Assistant's prefix (an ACL may forbid it).

use std::path::Path;

use rumqttc::v5::mqttbytes::QoS;

use super::Daemon;
use crate::mqtt::homeassistant::{self, Announcement, Board};
use crate::mqtt::link::Outbound;

const MARKER: &str = "homeassistant.topics";

impl Daemon {
    /// Retained messages for the link (published after every connection, and again
    /// when Home Assistant says `online`).
    pub(super) fn discovery_messages(&self) -> Vec<Outbound> {
        let ha = &self.setup.cfg.homeassistant;
        let marker = self.setup.store_dir.join(MARKER);
        let msgs = if ha.discovery {
            let board = Board {
                device_id: &self.setup.device_id,
                board: &self.board,
                version: env!("CARGO_PKG_VERSION"),
            };
            let a = homeassistant::announcements(ha, &self.setup.topics, &board);
            let topics: String = a.iter().map(|x| format!("{}\n", x.topic)).collect();
            if let Err(e) = std::fs::write(&marker, topics) {
                log::warn!("homeassistant: cannot write {}: {e}", marker.display());
            }
            log::info!(
                "homeassistant: discovery for {} entities under {}/",
                a.len(),
                ha.prefix
            );
            a
        } else {
            let removed = removals(&marker);
            if !removed.is_empty() {
                log::info!(
                    "homeassistant: discovery off, removing {} entities announced before",
                    removed.len()
                );
                let _ = std::fs::remove_file(&marker);
            }
            removed
        };
        msgs.into_iter()
            .map(|a| Outbound::new(a.topic, a.payload, QoS::AtLeastOnce, true))
            .collect()
    }
}

/// Empty retained payloads for the topics listed in the marker file (the prefix may
/// have changed since they were announced, so the file, not the config, says where).
fn removals(marker: &Path) -> Vec<Announcement> {
    std::fs::read_to_string(marker)
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|t| t.ends_with("/config") && !t.contains(['+', '#']))
        .map(|t| Announcement {
            topic: t.to_string(),
            payload: String::new(),
        })
        .collect()
}
