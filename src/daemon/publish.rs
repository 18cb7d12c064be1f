//! Link wiring: starting the MQTT link, retained state, telemetry, status text,
//! and connection notices from the link.

use rumqttc::v5::mqttbytes::QoS;

use super::{info, Daemon};
use crate::bench::result::now_ms;
use crate::mqtt::link::{self, FromLink, LinkState, Outbound, ToLink};

impl Daemon {
    pub(super) fn start_link(&mut self) {
        let Some(settings) = self.setup.link.clone() else {
            log::info!("mqtt.host is empty: MQTT off, results are only stored");
            return;
        };
        let seed = self
            .setup
            .device_id
            .bytes()
            .fold(now_ms() as u64, |h, b| h.rotate_left(5) ^ b as u64);
        let (handle, rx) = link::spawn(
            settings,
            self.setup.topics.clone(),
            self.store.clone(),
            seed,
        );
        let info = self.info_payload();
        let _ = handle.tx.try_send(ToLink::Retained(Outbound::new(
            self.setup.topics.info(),
            serde_json::Value::Object(info).to_string(),
            QoS::AtLeastOnce,
            true,
        )));
        let _ = handle.tx.try_send(ToLink::Retained(self.state_message()));
        for m in self.discovery_messages() {
            let _ = handle.tx.try_send(ToLink::Retained(m));
        }
        self.link = Some(handle);
        self.from_link = Some(rx);
    }

    pub(super) fn state_message(&self) -> Outbound {
        let mut s = self.state.clone();
        s.queued = self.sched.queued();
        Outbound::new(
            self.setup.topics.sweep_state(),
            s.to_json(&self.setup.device_id, now_ms()),
            QoS::AtLeastOnce,
            true,
        )
    }

    pub(super) async fn to_link(&self, m: ToLink) {
        if let Some(l) = &self.link {
            let _ = l.tx.send(m).await;
        }
    }

    pub(super) async fn publish_state(&self) {
        self.to_link(ToLink::Retained(self.state_message())).await;
        self.notifier.status(&self.status_text());
    }

    /// One telemetry scrape (sysfs reads, off the runtime), published at QoS 0.
    pub(super) async fn publish_telemetry(&self) {
        let Some(l) = &self.link else { return };
        if !self.connected {
            return;
        }
        let t = self.telemetry.clone();
        let store = self.store.clone();
        // statvfs of the store rides along with the sysfs reads, off the runtime.
        let (snapshot, st) = match tokio::task::spawn_blocking(move || {
            (t.snapshot(), store.refresh_space())
        })
        .await
        {
            Ok(s) => s,
            Err(e) => {
                log::warn!("telemetry scrape failed: {e}");
                return;
            }
        };
        let payload = info::telemetry(
            snapshot,
            &self.setup.device_id,
            &self.state.state,
            self.started.elapsed().as_secs(),
            &st,
        );
        // Best effort: dropped rather than queued when the link is busy.
        let _ = l.tx.try_send(ToLink::Publish(Outbound::new(
            self.setup.topics.telemetry(),
            payload,
            QoS::AtMostOnce,
            false,
        )));
    }

    pub(super) fn status_text(&self) -> String {
        let mqtt = match (&self.link, self.connected) {
            (None, _) => "mqtt off",
            (Some(_), true) => "mqtt connected",
            (Some(_), false) => "mqtt not connected",
        };
        let st = self.store.stats();
        let sweep = match (&self.active, &self.state.current) {
            (Some(_), Some(c)) => format!(
                "running sweep {} {}/{}: {c}",
                self.state.sweep.as_deref().unwrap_or("?"),
                self.state.done,
                self.state.total
            ),
            (Some(_), None) => format!(
                "running sweep {}",
                self.state.sweep.as_deref().unwrap_or("?")
            ),
            (None, _) => "idle".into(),
        };
        match st.alarm {
            Some(a) => format!("{sweep}; {mqtt}; {} bytes unsent; store {a}", st.unsent()),
            None => format!("{sweep}; {mqtt}; {} bytes unsent", st.unsent()),
        }
    }

    /// Connection notices (a `watch` from the link, never lost behind commands).
    pub(super) fn on_link_state(&mut self, st: LinkState) {
        if st.connected == self.connected {
            return;
        }
        self.connected = st.connected;
        if !st.connected {
            log::warn!("mqtt: disconnected: {}", st.why);
        }
        self.notifier.status(&self.status_text());
    }

    pub(super) async fn on_link(&mut self, ev: FromLink) {
        let FromLink::Command {
            verb,
            payload,
            response_topic,
            correlation,
            fleet,
            retained,
            message_expiry_s,
        } = ev;
        let origin = super::commands::Delivery {
            response_topic,
            correlation,
            fleet,
            retained,
            message_expiry_s,
        };
        self.on_command(&verb, &payload, origin).await
    }
}
