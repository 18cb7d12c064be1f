//! The Grafana dashboards (integrations/grafana/dashboards) against real stores. Grafana
//! itself is not installable here, so what Grafana would do with each panel is done by
//! hand, as Grafana documents it: the SQL's macros and variables are expanded
//! (PostgreSQL data source: `$__timeFilter`, `$__timeGroupAlias`, `$__interval`,
//! multi-value variables as quoted lists; frser-sqlite-datasource:
//! `$__unixEpochGroupSeconds`, the global `$__from` / `$__to` in ms), then run against
//! a real PostgreSQL and a real SQLite store that the real collector (`edgebench
//! collect`) filled from two real daemons' sweeps (tiny models, real ONNX Runtime,
//! telemetry from a captured Jetson Orin Nano sysfs tree). Every query must return rows
//! and the columns its panel's field config names. The live (MQTT) dashboard's fields
//! must be top-level keys of what the daemons publish on its topics. The JSON model
//! itself is checked by integrations/grafana/validate.py (grafana-foundation-sdk).

#[path = "common/broker.rs"]
mod broker;
#[path = "common/collector.rs"]
mod collector;
mod common;
#[path = "common/postgres.rs"]
mod pg;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use broker::{publish, wait_until, Broker, DaemonProc, Sub};
use collector::{write_config, Collector};
use serde_json::Value;

const T: Duration = Duration::from_secs(90);
const BOARDS: [&str; 2] = ["board-a", "board-b"];

fn grafana_dir() -> PathBuf {
    common::root().join("integrations/grafana")
}

fn daemon_config(dir: &Path, dev: &str, port: u16) -> PathBuf {
    let p = dir.join(format!("{dev}.toml"));
    let sweep = r#"[sweeps.tiny]
models = ["tiny_cnn", "missing_model"]
batches = [1, 2, 4]
eps = ["cpu"]
threads = [1]
precisions = ["fp32"]
"#;
    let store = dir.join(format!("store-{dev}"));
    std::fs::write(&p, common::daemon_toml(dev, port, &store, sweep)).expect("write daemon config");
    p
}

/// Grafana's time range for the test: the last hour up to a minute from now.
struct Range {
    from_ms: i64,
    to_ms: i64,
}

impl Range {
    fn now() -> Range {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        Range {
            from_ms: now - 3_600_000,
            to_ms: now + 60_000,
        }
    }
}

fn rfc3339(ms: i64) -> String {
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let secs = ms.div_euclid(1000);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

/// Values of the template variables, as Grafana interpolates them into SQL: multi-value
/// (and "All") variables as a comma-separated list of quoted strings, single values raw.
struct Vars {
    device: Vec<String>,
    model: Vec<String>,
    precision: Vec<String>,
    batch: String,
    baseline: String,
}

fn quoted(v: &[String]) -> String {
    v.iter()
        .map(|s| format!("'{}'", s.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(",")
}

/// Expands what Grafana expands before the query reaches the database.
fn expand(engine: &str, sql: &str, r: &Range, v: &Vars) -> String {
    // Panel interval: the test uses 1m.
    let mut s = sql.replace("$__interval", "1m");
    for (name, value) in [
        ("$device", quoted(&v.device)),
        ("$model", quoted(&v.model)),
        ("$precision", quoted(&v.precision)),
        ("$batch", v.batch.clone()),
        ("$baseline", v.baseline.clone()),
        ("$__from", r.from_ms.to_string()),
        ("$__to", r.to_ms.to_string()),
    ] {
        s = s.replace(name, &value);
    }
    // Macros `$__name(args)`.
    let mut out = String::new();
    let mut rest = s.as_str();
    while let Some(i) = rest.find("$__") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 3..];
        let open = after.find('(').expect("macro without arguments");
        let name = &after[..open];
        let close = after[open..].find(')').expect("unclosed macro") + open;
        let args: Vec<&str> = after[open + 1..close].split(',').map(str::trim).collect();
        out.push_str(&macro_(engine, name, &args, r));
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

fn seconds(interval: &str) -> i64 {
    let (n, unit) = interval.split_at(interval.len() - 1);
    let n: i64 = n.trim_matches('\'').parse().expect("interval");
    match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => panic!("interval {interval}"),
    }
}

fn macro_(engine: &str, name: &str, args: &[&str], r: &Range) -> String {
    match (engine, name) {
        // Grafana docs, PostgreSQL query editor, "Macros".
        ("postgres", "timeFilter") => format!(
            "{} BETWEEN '{}' AND '{}'",
            args[0],
            rfc3339(r.from_ms),
            rfc3339(r.to_ms)
        ),
        ("postgres", "timeGroupAlias") => {
            let s = seconds(args[1].trim_matches('\''));
            format!("floor(extract(epoch from {})/{s})*{s} AS \"time\"", args[0])
        }
        // frser-sqlite-datasource: its one macro.
        ("sqlite", "unixEpochGroupSeconds") => {
            format!("cast(({} / {}) as int) * {}", args[0], args[1], args[1])
        }
        _ => panic!("{engine}: macro $__{name} is not one the data source knows"),
    }
}

/// Runs a query; returns (column names, row count).
enum Db {
    Pg(postgres::Client),
    Lite(rusqlite::Connection),
}

impl Db {
    fn run(&mut self, sql: &str) -> Result<(Vec<String>, usize), String> {
        match self {
            Db::Pg(c) => {
                let st = c.prepare(sql).map_err(|e| format!("{e:?}"))?;
                let cols = st.columns().iter().map(|c| c.name().to_string()).collect();
                let rows = c.query(&st, &[]).map_err(|e| format!("{e:?}"))?;
                Ok((cols, rows.len()))
            }
            Db::Lite(c) => {
                let mut st = c.prepare(sql).map_err(|e| e.to_string())?;
                let cols = st.column_names().iter().map(|s| s.to_string()).collect();
                let mut rows = st.query([]).map_err(|e| e.to_string())?;
                let mut n = 0;
                while rows.next().map_err(|e| e.to_string())?.is_some() {
                    n += 1;
                }
                Ok((cols, n))
            }
        }
    }

    fn count(&mut self, sql: &str) -> i64 {
        match self {
            Db::Pg(c) => c
                .query_one(sql, &[])
                .map(|r| r.get::<_, i64>(0))
                .unwrap_or(0),
            Db::Lite(c) => c.query_row(sql, [], |r| r.get(0)).unwrap_or(0),
        }
    }

    fn strings(&mut self, sql: &str) -> Vec<String> {
        match self {
            Db::Pg(c) => c
                .query(sql, &[])
                .unwrap()
                .iter()
                .map(|r| r.get::<_, String>(0))
                .collect(),
            Db::Lite(c) => {
                let mut st = c.prepare(sql).unwrap();
                st.query_map([], |r| r.get::<_, String>(0))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect()
            }
        }
    }
}

fn sql_of(engine: &str, target: &Value) -> String {
    let key = if engine == "postgres" {
        "rawSql"
    } else {
        "queryText"
    };
    target[key]
        .as_str()
        .unwrap_or_else(|| panic!("target without {key}: {target}"))
        .to_string()
}

fn dashboards(sub: &str) -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> =
        std::fs::read_dir(grafana_dir().join("dashboards").join(sub))
            .expect("dashboards dir")
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .map(|p| {
                let v = serde_json::from_str(&std::fs::read_to_string(&p).unwrap())
                    .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                (p.file_name().unwrap().to_string_lossy().into_owned(), v)
            })
            .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Field names the panel's overrides match by name.
fn named_columns(panel: &Value) -> Vec<String> {
    panel["fieldConfig"]["overrides"]
        .as_array()
        .map(|o| {
            o.iter()
                .filter(|x| x["matcher"]["id"] == "byName")
                .filter_map(|x| x["matcher"]["options"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs every panel, annotation and variable query of the `engine`'s dashboards.
fn check_engine(engine: &str, db: &mut Db, vars: &Vars) -> usize {
    let range = Range::now();
    let boards = dashboards(engine);
    assert_eq!(boards.len(), 4, "{engine}: four SQL dashboards");
    let mut checked = 0;
    for (file, d) in &boards {
        let mut run = |what: &str, sql: &str| -> Vec<String> {
            let q = expand(engine, sql, &range, vars);
            let (cols, n) = db
                .run(&q)
                .unwrap_or_else(|e| panic!("{file} {what}: query failed: {e}\n{q}"));
            assert!(n > 0, "{file} {what}: no rows\n{q}");
            checked += 1;
            cols
        };
        for var in d["templating"]["list"].as_array().unwrap() {
            let sql = match engine {
                "postgres" => var["query"].as_str().unwrap().to_string(),
                _ => var["query"]["queryText"].as_str().unwrap().to_string(),
            };
            run(&format!("variable {}", var["name"]), &sql);
        }
        for ann in d["annotations"]["list"].as_array().unwrap() {
            if ann.get("target").is_some() {
                let cols = run(
                    &format!("annotation {}", ann["name"]),
                    &sql_of(engine, &ann["target"]),
                );
                for c in ["time", "timeend", "text", "tags"] {
                    assert!(cols.iter().any(|x| x == c), "{file}: annotation lacks {c}");
                }
            }
        }
        for panel in d["panels"].as_array().unwrap() {
            let title = panel["title"].as_str().unwrap();
            let mut cols = BTreeSet::new();
            for t in panel["targets"].as_array().unwrap() {
                assert_eq!(
                    t["datasource"]["uid"], panel["datasource"]["uid"],
                    "{file} {title}"
                );
                cols.extend(run(title, &sql_of(engine, t)));
            }
            for c in named_columns(panel) {
                assert!(
                    cols.contains(&c),
                    "{file} panel {title:?}: field config names `{c}`, the query returns {cols:?}"
                );
            }
            if panel["type"] == "timeseries" {
                assert!(
                    cols.contains("time"),
                    "{file} {title}: time series without time"
                );
            }
        }
    }
    checked
}

#[test]
fn every_panel_query_runs_on_real_postgres_and_sqlite_stores_and_returns_its_columns() {
    let _ = common::ort_lib();
    let broker = Broker::start();
    let sub = Sub::start(broker.port);
    let postgres = pg::Postgres::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let pg_url = postgres.new_db("fleet");
    let lite_path = dir.path().join("fleet.sqlite");
    let lite_url = format!("sqlite:{}", lite_path.display());
    let mut collectors = Vec::new();
    for (name, db) in [("pg", &pg_url), ("lite", &lite_url)] {
        let cfg = write_config(
            dir.path(),
            &format!("collect-{name}.toml"),
            broker.port,
            &format!("client_id = \"grafana-test-{name}\""),
        );
        collectors.push(Collector::start(
            &cfg,
            db,
            &dir.path().join(format!("collect-{name}.log")),
        ));
    }
    let mut daemons = Vec::new();
    for dev in BOARDS {
        let cfg = daemon_config(dir.path(), dev, broker.port);
        daemons.push(DaemonProc::spawn(
            &cfg,
            &dir.path().join(format!("{dev}.log")),
            &[],
        ));
        assert!(
            sub.wait_for(&format!("{dev}/status"), T, |m| m.payload == "online")
                .is_some(),
            "{dev} never online"
        );
    }
    publish(
        broker.port,
        "edgebench/v1/all/cmd/sweep-start",
        r#"{"request_id": "grafana-1", "sweep": "tiny"}"#,
        &[],
    );
    for dev in BOARDS {
        let done = sub.wait_for(&format!("{dev}/sweep/state"), T, |m| {
            let v = m.json();
            v["request_id"] == "grafana-1" && (v["state"] == "done" || v["state"] == "failed")
        });
        assert!(done.is_some(), "{dev}: sweep never finished");
    }

    let mut pgc = Db::Pg(postgres::Client::connect(&pg_url, postgres::NoTls).expect("connect"));
    let mut lite = Db::Lite(rusqlite::Connection::open(&lite_path).expect("open sqlite"));
    for (name, db) in [("postgres", &mut pgc), ("sqlite", &mut lite)] {
        let filled = wait_until(T, || {
            db.count("SELECT count(*) FROM results") >= 12
                && db.count("SELECT count(*) FROM summaries") >= 2
                && db.count("SELECT count(*) FROM sweeps") >= 2
                && db.count("SELECT count(DISTINCT device_id) FROM telemetry") >= 2
        });
        assert!(
            filled,
            "{name} store not filled:\n{}",
            collectors.iter().map(|c| c.log()).collect::<String>()
        );
    }
    let mut checked = 0;
    for (engine, db) in [("postgres", &mut pgc), ("sqlite", &mut lite)] {
        let vars = Vars {
            device: db.strings("SELECT DISTINCT device_id FROM devices ORDER BY 1"),
            model: db.strings("SELECT DISTINCT model FROM results ORDER BY 1"),
            precision: db.strings("SELECT DISTINCT precision FROM results ORDER BY 1"),
            batch: "1".into(),
            baseline: "board-a".into(),
        };
        assert_eq!(vars.device, BOARDS);
        checked += check_engine(engine, db, &vars);
    }
    // Per engine: 14 variable queries, 1 annotation, 13 panel targets.
    assert_eq!(checked, 56, "queries run");

    // The live dashboard: its fields are top-level keys of the messages on its topics.
    let (_, live) = &dashboards("mqtt")[0];
    for panel in live["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            assert_eq!(t["datasource"]["type"], "grafana-mqtt-datasource");
            let topic = t["topic"].as_str().unwrap().replace("${device}", "board-a");
            let msgs: Vec<Value> = sub
                .all()
                .into_iter()
                .filter(|m| m.topic == topic)
                .map(|m| m.json())
                .collect();
            assert!(
                !msgs.is_empty(),
                "live panel topic {topic}: nothing published"
            );
            for c in named_columns(panel) {
                // A field of the stream: a top-level scalar of the messages (a failed
                // result has no latency, an ok one has).
                assert!(
                    msgs.iter()
                        .any(|v| v.get(&c).is_some_and(|x| !x.is_object() && !x.is_array())),
                    "live panel {:?}: `{c}` is not a top-level scalar of any message on {topic}",
                    panel["title"]
                );
            }
        }
    }
}

/// The dashboard JSON against Grafana's model (grafana-foundation-sdk, installed by
/// integrations/grafana/setup-venv.sh, which `make test` runs), and the committed files
/// are what build.py writes.
#[test]
fn dashboards_are_up_to_date_and_valid_in_grafanas_dashboard_model() {
    let st = Command::new("python3")
        .arg(grafana_dir().join("build.py"))
        .arg("--check")
        .status()
        .expect("run build.py");
    assert!(
        st.success(),
        "dashboards out of date: run integrations/grafana/build.py"
    );
    let py = common::root().join(".deps/grafana-sdk-venv/bin/python");
    assert!(
        py.is_file(),
        "{} is missing: run integrations/grafana/setup-venv.sh (make test does)",
        py.display()
    );
    let out = Command::new(py)
        .arg(grafana_dir().join("validate.py"))
        .output()
        .expect("run validate.py");
    assert!(
        out.status.success(),
        "validate.py:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = String::from_utf8_lossy(&out.stdout).lines().count();
    assert_eq!(listed, 9, "nine dashboards validated");
}
