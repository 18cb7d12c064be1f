//! Home Assistant MQTT discovery (opt-in, `[homeassistant] discovery = true`): the
//! retained config messages that make a board show up in Home Assistant as a device
//! with five entities read from the topics the daemon already publishes (no extra
//! state topics):
//!
//! | entity | component | state topic | value |
//! |---|---|---|---|
//! | SoC temperature | sensor (temperature, °C) | `<p>/telemetry` | `temp_c` (hottest zone) |
//! | throttled | binary_sensor (problem) | `<p>/telemetry` | `throttled` |
//! | sweep state | sensor | `<p>/sweep/state` | `state` |
//! | last p50 | sensor (duration, ms) | `<p>/result` | `latency_ms_p50` |
//! | last throughput | sensor (img/s) | `<p>/result` | `throughput_ips` |
//!
//! Availability is the board's retained `<p>/status` (`online` / `offline`, also the
//! Last Will). Config topics follow the documented layout
//! `<discovery_prefix>/<component>/<node_id>/<object_id>/config`; an empty retained
//! payload on the same topics removes the entities. Pure: the daemon publishes what
//! these functions return.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::topics::Topics;

/// `[homeassistant]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HomeAssistantConfig {
    /// Publish discovery configs (retained) for this board. Turning it off removes
    /// the configs this board announced before.
    pub discovery: bool,
    /// Home Assistant's discovery prefix; its birth message is `<prefix>/status`.
    pub prefix: String,
}

impl Default for HomeAssistantConfig {
    fn default() -> Self {
        Self {
            discovery: false,
            prefix: "homeassistant".into(),
        }
    }
}

impl HomeAssistantConfig {
    /// Checks the prefix: a plain topic path (no wildcards, no empty levels).
    pub fn validate(&self) -> Result<(), String> {
        let p = &self.prefix;
        if p.is_empty() || p.contains(['+', '#', '\0']) || p.split('/').any(|l| l.is_empty()) {
            return Err(format!(
                "homeassistant.prefix {p:?}: must be a topic without wildcards or empty levels"
            ));
        }
        Ok(())
    }

    /// Home Assistant's birth / last-will topic: `online` there means it (re)started
    /// and wants the discovery configs again.
    pub fn birth_topic(&self) -> String {
        format!("{}/status", self.prefix)
    }
}

/// What the device block says about the board.
#[derive(Debug, Clone, PartialEq)]
pub struct Board<'a> {
    pub device_id: &'a str,
    /// Board name from telemetry detection (`jetson-orin-nano`, `x86-desk`...).
    pub board: &'a str,
    pub version: &'a str,
}

/// One discovery message: retained, QoS 1.
#[derive(Debug, Clone, PartialEq)]
pub struct Announcement {
    pub topic: String,
    /// JSON config, or empty to remove the entity.
    pub payload: String,
}

/// The entities, in a fixed order.
struct Entity {
    component: &'static str,
    object_id: &'static str,
    name: &'static str,
    state: fn(&Topics) -> String,
    extra: fn() -> Value,
}

const ENTITIES: [Entity; 5] = [
    Entity {
        component: "sensor",
        object_id: "soc_temperature",
        name: "SoC temperature",
        state: Topics::telemetry,
        extra: || {
            json!({
                "value_template": "{{ value_json.temp_c if value_json.temp_c is defined else none }}",
                "device_class": "temperature",
                "state_class": "measurement",
                "unit_of_measurement": "°C",
                "suggested_display_precision": 1
            })
        },
    },
    Entity {
        component: "binary_sensor",
        object_id: "throttled",
        name: "Throttled",
        state: Topics::telemetry,
        extra: || {
            json!({
                "value_template": "{{ 'ON' if value_json.throttled is defined and value_json.throttled else 'OFF' }}",
                "payload_on": "ON",
                "payload_off": "OFF",
                "device_class": "problem",
                "json_attributes_template":
                    "{{ {'throttle_reasons': value_json.throttle_reasons | default('')} | tojson }}"
            })
        },
    },
    Entity {
        component: "sensor",
        object_id: "sweep_state",
        name: "Sweep state",
        state: Topics::sweep_state,
        extra: || {
            json!({
                "value_template": "{{ value_json.state }}",
                "json_attributes_template":
                    "{{ {'sweep_id': value_json.sweep_id | default(none), 'done': value_json.done, 'total': value_json.total, 'current': value_json.current | default(none)} | tojson }}",
                "icon": "mdi:progress-clock"
            })
        },
    },
    Entity {
        component: "sensor",
        object_id: "last_p50",
        name: "Last p50 latency",
        state: Topics::result,
        extra: || {
            json!({
                "value_template": "{{ value_json.latency_ms_p50 if value_json.latency_ms_p50 is defined else none }}",
                "device_class": "duration",
                "state_class": "measurement",
                "unit_of_measurement": "ms",
                "suggested_display_precision": 3,
                "json_attributes_template": RESULT_ATTRIBUTES
            })
        },
    },
    Entity {
        component: "sensor",
        object_id: "last_throughput",
        name: "Last throughput",
        state: Topics::result,
        extra: || {
            json!({
                "value_template": "{{ value_json.throughput_ips if value_json.throughput_ips is defined else none }}",
                "state_class": "measurement",
                "unit_of_measurement": "img/s",
                "suggested_display_precision": 1,
                "icon": "mdi:speedometer",
                "json_attributes_template": RESULT_ATTRIBUTES
            })
        },
    },
];

/// Which configuration the last result was (attributes of the p50 and throughput
/// sensors).
const RESULT_ATTRIBUTES: &str = "{{ {'model': value_json.model, 'precision': value_json.precision, 'batch': value_json.batch, 'ep': value_json.ep, 'status': value_json.status, 'sweep_id': value_json.sweep_id} | tojson }}";

/// Home Assistant's `node_id`: `edgebench_<device id>` (device ids are `[a-z0-9-]`,
/// which discovery allows).
fn node_id(device_id: &str) -> String {
    format!("edgebench_{device_id}")
}

fn config_topic(prefix: &str, e: &Entity, device_id: &str) -> String {
    format!(
        "{prefix}/{}/{}/{}/config",
        e.component,
        node_id(device_id),
        e.object_id
    )
}

/// The discovery configs of this board (retained, to publish on every connection and
/// again when Home Assistant announces itself `online`).
pub fn announcements(cfg: &HomeAssistantConfig, topics: &Topics, b: &Board) -> Vec<Announcement> {
    let device = json!({
        "identifiers": [node_id(b.device_id)],
        "name": format!("edgebench {}", b.device_id),
        "manufacturer": "edgebench",
        "model": b.board,
        "sw_version": b.version,
    });
    let origin = json!({ "name": "edgebench", "sw_version": b.version });
    ENTITIES
        .iter()
        .map(|e| {
            let mut m = Map::new();
            m.insert("name".into(), e.name.into());
            m.insert(
                "unique_id".into(),
                format!("{}_{}", node_id(b.device_id), e.object_id).into(),
            );
            m.insert("state_topic".into(), (e.state)(topics).into());
            m.insert("availability_topic".into(), topics.status().into());
            m.insert("payload_available".into(), "online".into());
            m.insert("payload_not_available".into(), "offline".into());
            m.insert("qos".into(), 1.into());
            m.insert("device".into(), device.clone());
            m.insert("origin".into(), origin.clone());
            if let Value::Object(extra) = (e.extra)() {
                if extra.contains_key("json_attributes_template") {
                    // A few keys of the same message as attributes (never the whole
                    // telemetry map).
                    m.insert("json_attributes_topic".into(), (e.state)(topics).into());
                }
                m.extend(extra);
            }
            Announcement {
                topic: config_topic(&cfg.prefix, e, b.device_id),
                payload: Value::Object(m).to_string(),
            }
        })
        .collect()
}

/// Empty retained payloads on the same config topics: Home Assistant removes the
/// entities and the broker drops the retained configs.
pub fn removals(cfg: &HomeAssistantConfig, device_id: &str) -> Vec<Announcement> {
    ENTITIES
        .iter()
        .map(|e| Announcement {
            topic: config_topic(&cfg.prefix, e, device_id),
            payload: String::new(),
        })
        .collect()
}

/// Whether a message on the birth topic asks for the configs again.
pub fn is_birth(cfg: &HomeAssistantConfig, topic: &str, payload: &[u8]) -> bool {
    topic == cfg.birth_topic() && payload.trim_ascii() == b"online"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on() -> HomeAssistantConfig {
        HomeAssistantConfig {
            discovery: true,
            ..Default::default()
        }
    }

    fn board() -> Board<'static> {
        Board {
            device_id: "orin-1",
            board: "jetson-orin-nano",
            version: "0.1.0",
        }
    }

    fn parsed(a: &Announcement) -> Value {
        serde_json::from_str(&a.payload).unwrap()
    }

    #[test]
    fn five_entities_on_documented_topics_with_device_and_availability() {
        let t = Topics::new("edgebench/v1", "orin-1").unwrap();
        let a = announcements(&on(), &t, &board());
        let topics: Vec<&str> = a.iter().map(|x| x.topic.as_str()).collect();
        assert_eq!(
            topics,
            [
                "homeassistant/sensor/edgebench_orin-1/soc_temperature/config",
                "homeassistant/binary_sensor/edgebench_orin-1/throttled/config",
                "homeassistant/sensor/edgebench_orin-1/sweep_state/config",
                "homeassistant/sensor/edgebench_orin-1/last_p50/config",
                "homeassistant/sensor/edgebench_orin-1/last_throughput/config",
            ]
        );
        for x in &a {
            let v = parsed(x);
            assert_eq!(v["availability_topic"], "edgebench/v1/orin-1/status");
            assert_eq!(v["payload_available"], "online");
            assert_eq!(v["device"]["identifiers"][0], "edgebench_orin-1");
            assert_eq!(v["device"]["model"], "jetson-orin-nano");
            assert!(v["unique_id"]
                .as_str()
                .unwrap()
                .starts_with("edgebench_orin-1_"));
        }
        let temp = parsed(&a[0]);
        assert_eq!(temp["state_topic"], "edgebench/v1/orin-1/telemetry");
        assert_eq!(temp["device_class"], "temperature");
        assert_eq!(temp["unit_of_measurement"], "°C");
        assert!(temp["value_template"]
            .as_str()
            .unwrap()
            .contains("value_json.temp_c"));
        let thr = parsed(&a[1]);
        assert_eq!(thr["payload_on"], "ON");
        assert_eq!(thr["device_class"], "problem");
        assert_eq!(
            parsed(&a[2])["state_topic"],
            "edgebench/v1/orin-1/sweep/state"
        );
        let p50 = parsed(&a[3]);
        assert_eq!(p50["state_topic"], "edgebench/v1/orin-1/result");
        assert_eq!(p50["unit_of_measurement"], "ms");
        assert!(parsed(&a[4])["value_template"]
            .as_str()
            .unwrap()
            .contains("throughput_ips"));
    }

    #[test]
    fn unique_ids_differ_per_board_and_entity() {
        let t1 = Topics::new("edgebench/v1", "a").unwrap();
        let t2 = Topics::new("edgebench/v1", "b").unwrap();
        let mut ids = std::collections::BTreeSet::new();
        for (t, id) in [(&t1, "a"), (&t2, "b")] {
            let b = Board {
                device_id: id,
                ..board()
            };
            for x in announcements(&on(), t, &b) {
                assert!(ids.insert(parsed(&x)["unique_id"].as_str().unwrap().to_string()));
            }
        }
        assert_eq!(ids.len(), 10);
    }

    #[test]
    fn removals_are_empty_payloads_on_the_same_topics() {
        let t = Topics::new("edgebench/v1", "orin-1").unwrap();
        let cfg = HomeAssistantConfig {
            prefix: "ha".into(),
            ..on()
        };
        let a = announcements(&cfg, &t, &board());
        let r = removals(&cfg, "orin-1");
        assert_eq!(
            a.iter().map(|x| &x.topic).collect::<Vec<_>>(),
            r.iter().map(|x| &x.topic).collect::<Vec<_>>()
        );
        assert!(r.iter().all(|x| x.payload.is_empty()));
        assert!(r[0].topic.starts_with("ha/sensor/"));
    }

    #[test]
    fn birth_message_and_prefix_checks() {
        let c = on();
        assert!(is_birth(&c, "homeassistant/status", b"online"));
        assert!(is_birth(&c, "homeassistant/status", b"online\n"));
        assert!(!is_birth(&c, "homeassistant/status", b"offline"));
        assert!(!is_birth(&c, "other/status", b"online"));
        assert!(c.validate().is_ok());
        for bad in ["", "ha/#", "a//b", "+/x"] {
            let c = HomeAssistantConfig {
                prefix: bad.into(),
                ..on()
            };
            assert!(c.validate().is_err(), "{bad}");
        }
    }
}
