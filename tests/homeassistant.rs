//! Home Assistant MQTT discovery against a real broker: the daemon (real binary, real
//! ONNX Runtime, tiny model, telemetry from a captured Jetson Orin Nano sysfs tree)
//! publishes retained discovery configs; `mosquitto_sub` reads them as Home Assistant
//! would at start-up, and each is checked against the documented discovery schema
//! (topic layout, the configuration variables of MQTT sensor / binary sensor, the
//! device and origin blocks); the keys their templates read must be in the messages
//! the daemon really publishes. Then: Home Assistant's birth message makes the daemon
//! announce again, and turning discovery off removes the configs (empty retained).

#[path = "common/broker.rs"]
mod broker;
mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use broker::{publish, wait_until, Broker, DaemonProc, Sub};
use serde_json::Value;

const DEV: &str = "orin-1";
const T: Duration = Duration::from_secs(30);

// The documented discovery schema (home-assistant.io, integrations/mqtt "MQTT
// Discovery", sensor.mqtt and binary_sensor.mqtt "Configuration Variables").
const TOPIC_RE_HELP: &str =
    "<discovery_prefix>/<component>/[<node_id>/]<object_id>/config, ids [a-zA-Z0-9_-]";
const COMMON_KEYS: &[&str] = &[
    "availability",
    "availability_mode",
    "availability_template",
    "availability_topic",
    "default_entity_id",
    "device",
    "enabled_by_default",
    "encoding",
    "entity_category",
    "entity_picture",
    "expire_after",
    "force_update",
    "icon",
    "json_attributes_template",
    "json_attributes_topic",
    "name",
    "object_id",
    "origin",
    "payload_available",
    "payload_not_available",
    "platform",
    "qos",
    "state_topic",
    "unique_id",
    "value_template",
];
const SENSOR_KEYS: &[&str] = &[
    "device_class",
    "last_reset_value_template",
    "options",
    "state_class",
    "suggested_display_precision",
    "unit_of_measurement",
];
const BINARY_SENSOR_KEYS: &[&str] = &["device_class", "off_delay", "payload_off", "payload_on"];
const DEVICE_KEYS: &[&str] = &[
    "configuration_url",
    "connections",
    "hw_version",
    "identifiers",
    "manufacturer",
    "model",
    "model_id",
    "name",
    "serial_number",
    "suggested_area",
    "sw_version",
    "via_device",
];
const ORIGIN_KEYS: &[&str] = &["name", "sw_version", "support_url"];
const STATE_CLASSES: &[&str] = &["measurement", "total", "total_increasing"];
/// Device classes used here, with the units Home Assistant accepts for them.
const SENSOR_CLASSES: &[(&str, &[&str])] = &[
    ("temperature", &["°C", "°F", "K"]),
    ("duration", &["d", "h", "min", "s", "ms", "µs"]),
];
const BINARY_CLASSES: &[&str] = &["problem", "heat", "running", "connectivity"];

fn id_ok(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Checks one retained config against the schema above; returns the component.
fn check_config(topic: &str, v: &Value) -> String {
    let parts: Vec<&str> = topic.split('/').collect();
    assert!(
        (parts.len() == 4 || parts.len() == 5)
            && parts[0] == "homeassistant"
            && parts.last() == Some(&"config"),
        "{topic}: not {TOPIC_RE_HELP}"
    );
    let component = parts[1];
    assert!(
        parts[2..parts.len() - 1].iter().all(|p| id_ok(p)),
        "{topic}: node_id / object_id must be [a-zA-Z0-9_-]"
    );
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("{topic}: not a JSON object"));
    let specific = match component {
        "sensor" => SENSOR_KEYS,
        "binary_sensor" => BINARY_SENSOR_KEYS,
        other => panic!("{topic}: unexpected component {other}"),
    };
    for k in obj.keys() {
        assert!(
            COMMON_KEYS.contains(&k.as_str()) || specific.contains(&k.as_str()),
            "{topic}: `{k}` is not a documented {component} configuration variable"
        );
    }
    for (k, want) in [
        ("state_topic", "string"),
        ("unique_id", "string"),
        ("name", "string"),
        ("availability_topic", "string"),
        ("value_template", "string"),
    ] {
        assert!(
            v[k].is_string(),
            "{topic}: `{k}` must be a {want} (required here)"
        );
    }
    for k in ["state_topic", "availability_topic", "json_attributes_topic"] {
        if let Some(t) = v[k].as_str() {
            assert!(
                !t.is_empty() && !t.contains(['+', '#']),
                "{topic}: {k} {t:?}"
            );
        }
    }
    assert!(matches!(v["qos"].as_u64(), Some(0..=2)), "{topic}: qos");
    let dev = v["device"].as_object().expect("device block");
    for k in dev.keys() {
        assert!(
            DEVICE_KEYS.contains(&k.as_str()),
            "{topic}: device.{k} undocumented"
        );
    }
    let ids = dev["identifiers"]
        .as_array()
        .expect("device.identifiers list");
    assert!(!ids.is_empty() && ids.iter().all(Value::is_string));
    let origin = v["origin"].as_object().expect("origin block");
    for k in origin.keys() {
        assert!(
            ORIGIN_KEYS.contains(&k.as_str()),
            "{topic}: origin.{k} undocumented"
        );
    }
    assert!(
        origin["name"].is_string(),
        "{topic}: origin.name is required"
    );
    if let Some(sc) = v["state_class"].as_str() {
        assert!(STATE_CLASSES.contains(&sc), "{topic}: state_class {sc}");
    }
    match component {
        "sensor" => {
            if let Some(dc) = v["device_class"].as_str() {
                let units = SENSOR_CLASSES
                    .iter()
                    .find(|(c, _)| *c == dc)
                    .unwrap_or_else(|| panic!("{topic}: device_class {dc}"))
                    .1;
                let u = v["unit_of_measurement"].as_str().unwrap_or_default();
                assert!(units.contains(&u), "{topic}: unit {u:?} for {dc}");
            }
            if let Some(p) = v.get("suggested_display_precision") {
                assert!(p.is_u64(), "{topic}: suggested_display_precision");
            }
        }
        _ => {
            if let Some(dc) = v["device_class"].as_str() {
                assert!(BINARY_CLASSES.contains(&dc), "{topic}: device_class {dc}");
            }
        }
    }
    component.to_string()
}

/// `value_json.<key>` names a template reads.
/// The `value_json` keys a template reads without a guard (`| default(...)` or
/// `value_json.k is defined`): those must be in every message on the topic, or
/// Home Assistant renders an error.
fn template_keys(t: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = t;
    while let Some(i) = rest.find("value_json.") {
        rest = &rest[i + "value_json.".len()..];
        let k: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let after = rest[k.len()..].trim_start();
        let guarded =
            after.starts_with("| default(") || t.contains(&format!("value_json.{k} is defined"));
        if !guarded {
            out.insert(k);
        }
    }
    out
}

fn config(dir: &Path, port: u16, discovery: bool) -> PathBuf {
    let p = dir.join("edgebench.toml");
    let extra = format!(
        r#"[homeassistant]
discovery = {discovery}
[sweeps.tiny]
models = ["tiny_cnn"]
batches = [1]
eps = ["cpu"]
threads = [1]
precisions = ["fp32"]
"#
    );
    std::fs::write(
        &p,
        common::daemon_toml(DEV, port, &dir.join("store"), &extra),
    )
    .expect("write config");
    p
}

/// A `mosquitto_sub` on `homeassistant/#` that connects, takes what is retained
/// (`-W` seconds of listening) and exits: what Home Assistant sees when it starts.
fn retained_configs(port: u16) -> Vec<(String, String)> {
    let out = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-V", "mqttv5"])
        .args(["-t", "homeassistant/#", "-F", "%r %t %p", "-W", "2"])
        .stderr(Stdio::null())
        .output()
        .expect("run mosquitto_sub");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut p = l.splitn(3, ' ');
            let retained = p.next()? == "1";
            let topic = p.next()?.to_string();
            let payload = p.next().unwrap_or_default().to_string();
            (retained && topic.ends_with("/config")).then_some((topic, payload))
        })
        .collect()
}

/// Everything on `homeassistant/#` from the moment it subscribed (live and retained).
struct HaSub {
    msgs: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
    child: std::process::Child,
}

impl HaSub {
    fn start(port: u16) -> HaSub {
        use std::io::BufRead;
        let mut child = Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-V", "mqttv5"])
            .args(["-q", "1", "-t", "homeassistant/#", "-F", "%t %p"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run mosquitto_sub");
        let out = child.stdout.take().expect("stdout");
        let msgs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let m = msgs.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let (t, p) = line.split_once(' ').unwrap_or((line.as_str(), ""));
                m.lock().unwrap().push((t.to_string(), p.to_string()));
            }
        });
        let s = HaSub { msgs, child };
        let probe = format!("probe-{}", std::process::id());
        let ok = wait_until(T, || {
            publish(port, "homeassistant/probe", &probe, &[]);
            wait_until(Duration::from_millis(300), || {
                s.msgs.lock().unwrap().iter().any(|(_, p)| *p == probe)
            })
        });
        assert!(ok, "mosquitto_sub on homeassistant/# did not subscribe");
        s
    }

    /// Messages on config topics, as (topic, payload).
    fn on(&self, suffix: &str) -> Vec<broker::Msg> {
        self.msgs
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| t.ends_with(suffix))
            .map(|(t, p)| broker::Msg {
                retained: false,
                topic: t.clone(),
                payload: p.clone(),
            })
            .collect()
    }
}

impl Drop for HaSub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn discovery_configs_follow_the_documented_schema_reannounce_and_are_removed() {
    let broker = Broker::start();
    let sub = Sub::start(broker.port);
    let ha = HaSub::start(broker.port);
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), broker.port, true);
    let mut daemon = DaemonProc::spawn(&cfg, &dir.path().join("daemon.log"), &[]);
    assert!(
        sub.wait_for("/status", T, |m| m.payload == "online")
            .is_some(),
        "daemon never online:\n{}",
        daemon.log()
    );

    // What a Home Assistant starting now reads: five retained configs.
    let mut configs = Vec::new();
    wait_until(T, || {
        configs = retained_configs(broker.port);
        configs.len() >= 5
    });
    assert_eq!(configs.len(), 5, "{configs:?}\n{}", daemon.log());
    let mut components = Vec::new();
    let mut uniques = BTreeSet::new();
    let mut reads: Vec<(String, BTreeSet<String>)> = Vec::new();
    for (topic, payload) in &configs {
        let v: Value = serde_json::from_str(payload)
            .unwrap_or_else(|e| panic!("{topic}: not JSON ({e}): {payload}"));
        components.push(check_config(topic, &v));
        assert!(uniques.insert(v["unique_id"].as_str().unwrap().to_string()));
        assert_eq!(
            v["availability_topic"],
            format!("edgebench/v1/{DEV}/status")
        );
        assert_eq!(v["device"]["identifiers"][0], format!("edgebench_{DEV}"));
        // The board name detected from the sysfs tree.
        assert_eq!(v["device"]["model"], "jetson-orin-nano", "{v}");
        let mut keys = template_keys(v["value_template"].as_str().unwrap());
        keys.extend(template_keys(
            v["json_attributes_template"].as_str().unwrap_or_default(),
        ));
        reads.push((v["state_topic"].as_str().unwrap().to_string(), keys));
    }
    components.sort();
    assert_eq!(
        components,
        ["binary_sensor", "sensor", "sensor", "sensor", "sensor"]
    );
    let names: BTreeSet<&str> = configs
        .iter()
        .map(|(t, _)| t.rsplit('/').nth(1).unwrap())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "last_p50",
            "last_throughput",
            "soc_temperature",
            "sweep_state",
            "throttled"
        ])
    );
    // Availability: the status topic says online (retained).
    let late = Sub::start(broker.port);
    let st = late
        .wait_for("/status", T, |m| m.retained)
        .expect("retained status");
    assert_eq!(st.payload, "online");

    // The keys the templates read are in what the daemon really publishes.
    publish(
        broker.port,
        &format!("edgebench/v1/{DEV}/cmd/sweep-start"),
        r#"{"request_id": "ha-1", "sweep": "tiny"}"#,
        &[],
    );
    let reply = sub.reply("ha-1", T).expect("reply");
    let sweep_id = reply["sweep_id"].as_str().unwrap().to_string();
    assert!(sub
        .wait_for("/result", T, |m| m.json()["sweep_id"] == sweep_id.as_str())
        .is_some());
    assert!(sub.wait_for("/telemetry", T, |_| true).is_some());
    // The sweep's end state (it carries no `current`) is among those checked.
    assert!(
        wait_until(T, || sub
            .all()
            .iter()
            .any(
                |m| m.topic.ends_with("/sweep/state") && m.json()["state"] == "done"
            )),
        "no done state:\n{}",
        daemon.log()
    );

    // Every message on each state topic (idle, running and done states alike).
    for (state_topic, keys) in &reads {
        let msgs: Vec<_> = sub
            .all()
            .into_iter()
            .filter(|m| &m.topic == state_topic)
            .collect();
        assert!(!msgs.is_empty(), "nothing published on {state_topic}");
        for msg in msgs {
            let v = msg.json();
            for k in keys {
                assert!(
                    v.get(k).is_some(),
                    "{state_topic}: template reads `{k}` unguarded, absent from {v}"
                );
            }
        }
    }
    // Home Assistant restarts (birth message): the configs come again.
    let before = ha.on("/config").len();
    publish(broker.port, "homeassistant/status", "online", &[]);
    assert!(
        wait_until(T, || ha.on("/config").len() >= before + 5),
        "no re-announcement after homeassistant/status online:\n{}",
        daemon.log()
    );
    // `offline` from Home Assistant does not.
    let now = ha.on("/config").len();
    publish(broker.port, "homeassistant/status", "offline", &[]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(ha.on("/config").len(), now);

    // Turned off (restart with discovery = false): empty retained payloads remove them.
    assert!(daemon
        .stop_with(libc::SIGTERM, Duration::from_secs(15))
        .is_some());
    config(dir.path(), broker.port, false);
    let _daemon2 = DaemonProc::spawn(&cfg, &dir.path().join("daemon2.log"), &[]);
    let removed = wait_until(T, || retained_configs(broker.port).is_empty());
    assert!(
        removed,
        "configs still retained: {:?}",
        retained_configs(broker.port)
    );
    let empties: BTreeSet<String> = ha
        .on("/config")
        .into_iter()
        .filter(|m| m.payload.is_empty())
        .map(|m| m.topic)
        .collect();
    let announced: BTreeSet<String> = configs.iter().map(|(t, _)| t.clone()).collect();
    assert_eq!(empties, announced);
}

#[test]
fn a_board_that_never_used_discovery_publishes_nothing_under_the_prefix() {
    let broker = Broker::start();
    let sub = Sub::start(broker.port);
    let ha = HaSub::start(broker.port);
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), broker.port, false);
    let daemon = DaemonProc::spawn(&cfg, &dir.path().join("daemon.log"), &[]);
    assert!(
        sub.wait_for("/status", T, |m| m.payload == "online")
            .is_some(),
        "{}",
        daemon.log()
    );
    publish(broker.port, "homeassistant/status", "online", &[]);
    std::thread::sleep(Duration::from_millis(800));
    assert!(ha.on("/config").is_empty(), "{:?}", ha.on("/config"));
}

#[test]
fn turning_discovery_off_with_a_reload_removes_the_configs_and_on_again_announces() {
    let broker = Broker::start();
    let sub = Sub::start(broker.port);
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), broker.port, true);
    let daemon = DaemonProc::spawn(&cfg, &dir.path().join("daemon.log"), &[]);
    assert!(
        sub.wait_for("/status", T, |m| m.payload == "online")
            .is_some(),
        "{}",
        daemon.log()
    );
    assert!(
        wait_until(T, || retained_configs(broker.port).len() == 5),
        "{}",
        daemon.log()
    );
    // SIGHUP with discovery = false: the link restarts and clears the configs.
    config(dir.path(), broker.port, false);
    broker::signal(daemon.child.id(), libc::SIGHUP);
    assert!(
        wait_until(T, || retained_configs(broker.port).is_empty()),
        "still retained after the reload:\n{}",
        daemon.log()
    );
    // And on again.
    config(dir.path(), broker.port, true);
    broker::signal(daemon.child.id(), libc::SIGHUP);
    assert!(
        wait_until(T, || retained_configs(broker.port).len() == 5),
        "not announced after the second reload:\n{}",
        daemon.log()
    );
}
