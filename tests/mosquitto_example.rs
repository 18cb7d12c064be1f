//! The mosquitto configuration shipped in `integrations/mosquitto/` (TLS, one user
//! per board, per-device ACLs), run by a real mosquitto: the daemon connects over
//! TLS with its password; a board publishes only under its own prefix and reads only
//! its own commands and the fleet's.

#[path = "common/broker.rs"]
mod broker;
mod common;
#[path = "common/tls.rs"]
mod tls;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use broker::{free_port, wait_until, Broker, DaemonProc, Sub};

const T: Duration = Duration::from_secs(30);

fn private(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn passwd(file: &Path, user: &str, pass: &str) {
    let mut c = Command::new("mosquitto_passwd");
    c.arg("-b");
    if !file.exists() {
        c.arg("-c");
    }
    let st = c
        .arg(file)
        .args([user, pass])
        .status()
        .expect("mosquitto_passwd");
    assert!(st.success());
}

/// `mosquitto_pub` as `user`; the result does not matter (a denied publish is
/// simply not forwarded).
fn pub_as(port: u16, user: &str, topic: &str, payload: &str) {
    let _ = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(["-u", user, "-P", &format!("{user}-pass")])
        .args(["-t", topic, "-m", payload])
        .stderr(Stdio::null())
        .status();
}

/// What `user` receives on `filter` while `during` runs.
fn sub_as(port: u16, user: &str, filter: &str, during: impl FnOnce()) -> String {
    let child = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(["-u", user, "-P", &format!("{user}-pass")])
        .args(["-t", filter, "-v", "-W", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto_sub");
    std::thread::sleep(Duration::from_millis(700));
    during();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn example_config_confines_each_board_to_its_own_topics_over_tls() {
    let root = common::root().join("integrations/mosquitto");
    let conf = std::fs::read_to_string(root.join("edgebench.conf")).unwrap();
    let acl = std::fs::read_to_string(root.join("edgebench.acl")).unwrap();
    let work = tempfile::tempdir().unwrap();
    let certs = work.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    tls::make_certs(&certs);
    let pw = work.path().join("passwd");
    for u in ["board-1", "board-2", "operator"] {
        passwd(&pw, u, &format!("{u}-pass"));
    }
    // The test's own subscriber probes on test/#: the operator may use it here.
    std::fs::write(
        work.path().join("acl"),
        format!("{acl}topic readwrite test/#\n"),
    )
    .unwrap();
    let tls_port = free_port();
    // The example as shipped, with this machine's paths and ports; the helper adds
    // a plain listener (same ACLs, per_listener_settings false) and persistence.
    let conf: String = conf
        .replace("/etc/mosquitto/edgebench.passwd", &pw.display().to_string())
        .replace(
            "/etc/mosquitto/edgebench.acl",
            &work.path().join("acl").display().to_string(),
        )
        .replace("/etc/mosquitto/certs", &certs.display().to_string())
        .replace("listener 8883", &format!("listener {tls_port} 127.0.0.1"))
        .lines()
        .filter(|l| !l.starts_with("persistence"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(conf.contains("acl_file") && conf.contains("certfile"));
    let broker = Broker::start_with(&conf);
    let port = broker.port;
    let op = ["-u", "operator", "-P", "operator-pass"];
    let sub = Sub::start_opts(port, None, &op);

    // The daemon as board-1: TLS with the test CA, its password.
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("password");
    std::fs::write(&secret, "board-1-pass\n").unwrap();
    private(&secret);
    let cfg = dir.path().join("edgebench.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[device]
id = "board-1"
[onnxruntime]
library = "{lib}"
[models]
dir = "{models}"
[store]
dir = "{store}"
[mqtt]
host = "127.0.0.1"
port = {tls_port}
username = "board-1"
password_file = "{secret}"
telemetry_interval_s = 0.0
backoff_min_s = 0.1
backoff_max_s = 1.0
[mqtt.tls]
ca_file = "{ca}"
"#,
            lib = common::ort_lib().display(),
            models = common::fixture_models().display(),
            store = dir.path().join("store").display(),
            secret = secret.display(),
            ca = certs.join("ca.crt").display(),
        ),
    )
    .unwrap();
    let d = DaemonProc::spawn(&cfg, &dir.path().join("daemon.log"), &[]);
    assert!(
        sub.wait_for("board-1/status", T, |m| m.payload == "online")
            .is_some(),
        "board-1 online over TLS:\n{}\n{}",
        d.log(),
        broker.log()
    );
    // The operator commands it; the reply comes back (its own reply topic).
    broker::publish(
        port,
        "edgebench/v1/board-1/cmd/status-get",
        r#"{"request_id":"acl-1"}"#,
        &op,
    );
    assert!(sub.reply("acl-1", T).is_some(), "{}", d.log());
    // A fleet command reaches it too.
    broker::publish(
        port,
        "edgebench/v1/all/cmd/status-get",
        r#"{"request_id":"acl-fleet"}"#,
        &op,
    );
    assert!(sub.reply("acl-fleet", T).is_some());

    // Publishing: own prefix yes, another board's no.
    pub_as(port, "board-1", "edgebench/v1/board-1/telemetry", "own");
    pub_as(port, "board-1", "edgebench/v1/board-2/result", "forged");
    pub_as(
        port,
        "board-1",
        "edgebench/v1/board-2/cmd/sweep-start",
        "forged",
    );
    pub_as(
        port,
        "board-1",
        "edgebench/v1/all/cmd/sweep-start",
        "forged",
    );
    assert!(wait_until(T, || sub
        .on("board-1/telemetry")
        .iter()
        .any(|m| m.payload == "own")));
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        sub.all().iter().all(|m| m.payload != "forged"),
        "board-1 published outside its prefix: {:?}",
        sub.all()
    );

    // Reading: own commands and the fleet's yes; another board's commands and
    // results no.
    let send = || {
        for t in [
            "edgebench/v1/board-1/cmd/x",
            "edgebench/v1/board-2/cmd/x",
            "edgebench/v1/all/cmd/x",
        ] {
            broker::publish(port, t, &format!("to {t}"), &op);
        }
        pub_as(port, "board-2", "edgebench/v1/board-2/result", "secret");
    };
    let own = sub_as(port, "board-2", "edgebench/v1/board-2/cmd/+", send);
    assert!(own.contains("board-2/cmd/x"), "{own}");
    let fleet = sub_as(port, "board-2", "edgebench/v1/all/cmd/+", send);
    assert!(fleet.contains("all/cmd/x"), "{fleet}");
    let other = sub_as(port, "board-2", "edgebench/v1/board-1/#", send);
    assert!(other.is_empty(), "board-2 read board-1's topics: {other}");
    let results = sub_as(port, "board-1", "edgebench/v1/+/result", send);
    assert!(
        !results.contains("secret"),
        "board-1 read board-2's results: {results}"
    );
    // The operator sees board-2's own result.
    assert!(sub
        .on("board-2/result")
        .iter()
        .any(|m| m.payload == "secret"));
}
