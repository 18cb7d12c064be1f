//! `edgebench report` over the fixture files in tests/fixtures/report: three "boards"
//! (a Raspberry Pi 5 on ONNX Runtime, the same board in two more result files from two
//! other devices, a Coral Dev Board on TFLite with records as an older edgebench wrote
//! them: no `arch`, `median_rel_ci` only). Every expected number below is worked out by
//! hand from the fixture values.

#[path = "common/broker.rs"]
mod broker;
mod common;
#[path = "common/postgres.rs"]
mod pg;
use common::*;

use std::path::PathBuf;
use std::process::Output;

use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures/report").join(name)
}

fn all() -> Vec<PathBuf> {
    ["rpi5_a.jsonl", "rpi5_bc.jsonl", "coral.jsonl"]
        .iter()
        .map(|f| fixture(f))
        .collect()
}

fn report(files: &[PathBuf], args: &[&str]) -> Output {
    let mut c = std::process::Command::new(bin());
    c.arg("report").args(files).args(args);
    c.output().expect("run edgebench report")
}

fn json(files: &[PathBuf], args: &[&str]) -> Value {
    let mut a = vec!["--format", "json"];
    a.extend_from_slice(args);
    let o = report(files, &a);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_str(&stdout(&o)).expect("one JSON document")
}

fn close(a: &Value, b: f64) -> bool {
    a.as_f64().is_some_and(|a| (a - b).abs() < 1e-9)
}

fn find<'a>(v: &'a Value, list: &str, pred: impl Fn(&Value) -> bool) -> &'a Value {
    v[list]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| pred(x))
        .unwrap_or_else(|| panic!("no matching entry in {list}: {v:#}"))
}

#[test]
fn gains_pair_onnx_and_coral_names_with_hand_computed_intervals() {
    let v = json(&all(), &["--baseline", "board=raspberrypi5,ep=cpu"]);
    assert_eq!(v["baseline"], "raspberrypi5/ort/cpu");
    assert_eq!(v["platforms"].as_array().unwrap().len(), 3);

    // The Pi's int8 batch 1 ran on three devices: p50 8.0, 9.0, 8.5 -> median 8.5,
    // spread 8.0-9.0, interval envelope [7.8, 9.3].
    let base = find(&v, "rows", |r| {
        r["platform"] == "raspberrypi5/ort/cpu" && r["precision"] == "int8"
    });
    assert_eq!(base["runs"], 3);
    assert!(
        close(&base["p50_ms"], 8.5)
            && close(&base["p50_ms_min"], 8.0)
            && close(&base["p50_ms_max"], 9.0),
        "{base}"
    );
    assert!(
        close(&base["p50_ci_low"], 7.8) && close(&base["p50_ci_high"], 9.3),
        "{base}"
    );

    // mobilenet_v2_edgetpu (Coral, no arch key in the record) pairs with
    // mobilenet_v2_int8 (ONNX): 8.5 / 2.0 = 4.25, interval [7.8 / 2.5, 9.3 / 1.9].
    let g = find(&v, "gains", |g| {
        g["platform"] == "coral-devboard/tflite/edgetpu"
    });
    assert_eq!(g["arch"], "mobilenet_v2");
    assert_eq!(
        (g["models"].as_str(), g["baseline_models"].as_str()),
        (Some("mobilenet_v2_edgetpu"), Some("mobilenet_v2_int8"))
    );
    assert_eq!(g["batch"], 1);
    assert!(close(&g["gain"], 4.25), "{g}");
    assert!(
        close(&g["low"], 7.8 / 2.5) && close(&g["high"], 9.3 / 1.9),
        "{g}"
    );
    assert_eq!(g["verdict"], "faster");

    // The Coral CPU: 8.5 / 8.4, interval [7.8 / 8.8, 9.3 / 8.0] = [0.886, 1.1625]: spans 1.
    let g = find(&v, "gains", |g| {
        g["platform"] == "coral-devboard/tflite/cpu"
    });
    assert!(
        close(&g["gain"], 8.5 / 8.4) && close(&g["low"], 7.8 / 8.8) && close(&g["high"], 9.3 / 8.0),
        "{g}"
    );
    assert_eq!(g["verdict"], "no_measurable_difference");
    assert_eq!(
        v["gains"].as_array().unwrap().len(),
        2,
        "fp32 has no partner: {v:#}"
    );

    // Unpaired, not dropped: the Edge TPU's batches 2, 4, 8 (the Pi ran int8 at batch 1
    // only) and the Pi's fp32 rows.
    let unpaired = v["unpaired"].as_array().unwrap();
    for b in [2, 4, 8] {
        assert!(
            unpaired
                .iter()
                .any(|u| u["platform"] == "coral-devboard/tflite/edgetpu"
                    && u["batch"] == b
                    && u["reason"] == "the baseline has no result for it"),
            "{b}: {unpaired:?}"
        );
    }
    assert!(unpaired
        .iter()
        .any(|u| u["precision"] == "fp32" && u["batch"] == 16));
    assert!(unpaired
        .iter()
        .any(|u| u["batch"] == 64 && u["reason"].as_str().unwrap().contains("1 failed")));

    // The Coral's older records: interval from median_rel_ci 0.05 around 4.0.
    let r = find(&v, "rows", |r| {
        r["platform"] == "coral-devboard/tflite/edgetpu" && r["batch"] == 2
    });
    assert!(
        close(&r["p50_ci_low"], 3.8) && close(&r["p50_ci_high"], 4.2),
        "{r}"
    );
}

#[test]
fn knees_hand_computed_non_monotone_ties_and_batch_modes_apart() {
    let v = json(&all(), &["--baseline", "board=raspberrypi5"]);
    // Pi fp32 native: 1:100 [95,105], 2:190 [180,200], 4:170, 8:200 [195,205],
    // 16:196, 32 throttled (250), 64 failed. Peak 200 at 8; 0.95 * 200 = 190: batch 2
    // reaches it exactly (tie counts). Range: top >= 0.95 * 195 -> 2; bottom >=
    // 0.95 * 205 = 194.75 -> 8. Batch 4 dips below, so the sustained knee is 8.
    let k = find(&v, "knees", |k| {
        k["platform"] == "raspberrypi5/ort/cpu"
            && k["precision"] == "fp32"
            && k["batch_mode"] == "native"
    });
    let k = &k["knee"];
    assert_eq!(
        (k["batch"].as_u64(), k["peak_batch"].as_u64()),
        (Some(2), Some(8)),
        "{k}"
    );
    assert_eq!(
        (k["batch_low"].as_u64(), k["batch_high"].as_u64()),
        (Some(2), Some(8)),
        "{k}"
    );
    assert_eq!(k["sustained_batch"], 8);
    assert!(
        close(&k["peak_throughput_ips"], 200.0),
        "the throttled 250 is left out: {k}"
    );
    assert_eq!(
        k["excluded"],
        serde_json::json!([[32, "throttled"], [64, "failed"]])
    );
    // The sequential batch-4 point (1000 samples/s) is a curve of its own.
    let s = find(&v, "knees", |k| {
        k["platform"] == "raspberrypi5/ort/cpu"
            && k["precision"] == "fp32"
            && k["batch_mode"] == "sequential"
    });
    assert_eq!(s["knee"]["batch"], 4);
    // Edge TPU, sequential: 500, 500, 493.8, 500: three-way tie at the peak -> the
    // smallest batch, 1; every batch stays above 475 -> sustained 1.
    let e = find(&v, "knees", |k| {
        k["platform"] == "coral-devboard/tflite/edgetpu"
    });
    assert_eq!(
        (
            e["knee"]["batch"].as_u64(),
            e["knee"]["peak_batch"].as_u64(),
            e["knee"]["sustained_batch"].as_u64()
        ),
        (Some(1), Some(1), Some(1))
    );
    // --knee-fraction 1.0: the native knee is the peak itself.
    let v = json(&all(), &["--knee-fraction", "1.0"]);
    let k = find(&v, "knees", |k| {
        k["precision"] == "fp32" && k["batch_mode"] == "native"
    });
    assert_eq!(k["knee"]["batch"], 8);
}

#[test]
fn default_baseline_is_the_slowest_platform_and_is_stated() {
    // Shared point int8 batch 1: Pi 8.5, Coral CPU 8.4, Edge TPU 2.0 -> the Pi.
    let o = report(&all(), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let t = stdout(&o);
    assert!(
        t.contains("baseline: raspberrypi5/ort/cpu (default: the slowest platform"),
        "{t}"
    );
    assert!(
        t.contains("4.25x") && t.contains("[3.12, 4.89]") && t.contains("no measurable difference"),
        "{t}"
    );
    assert!(
        t.contains(
            "knee  mobilenet_v2 fp32 raspberrypi5/ort/cpu native: batch 2 (range 2-8, sustained 8)"
        ),
        "{t}"
    );
    assert!(t.contains("left out: 32 throttled, 64 failed"), "{t}");
    // --where narrows the input: the Coral alone, its CPU the slowest.
    let v = json(&all(), &["--where", "board=coral-devboard"]);
    assert_eq!(v["baseline"], "coral-devboard/tflite/cpu");
    assert_eq!(v["results_used"], 5);
    assert_eq!(v["results_read"], 16);
}

#[test]
fn markdown_and_csv_carry_the_same_numbers() {
    let o = report(
        &all(),
        &["--format", "md", "--baseline", "board=raspberrypi5"],
    );
    assert!(o.status.success());
    let md = stdout(&o);
    assert!(
        md.starts_with("# edgebench report")
            && md.contains("| platform | arch |")
            && md.contains("| 4.25x |"),
        "{md}"
    );
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("r.csv");
    let o = report(
        &all(),
        &[
            "--format",
            "csv",
            "--baseline",
            "board=raspberrypi5",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(o.status.success() && stdout(&o).is_empty());
    let csv = std::fs::read_to_string(&out).unwrap();
    let mut lines = csv.lines();
    let head: Vec<&str> = lines.next().unwrap().split(',').collect();
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 14, "one line per aggregated configuration");
    let col = |name: &str| head.iter().position(|h| *h == name).unwrap();
    let tpu = rows
        .iter()
        .map(|r| r.split(',').collect::<Vec<_>>())
        .find(|r| r[0] == "coral-devboard/tflite/edgetpu" && r[col("batch")] == "1")
        .unwrap();
    assert_eq!(tpu[col("gain")], "4.25");
    assert_eq!(tpu[col("verdict")], "faster");
}

#[test]
fn baseline_matching_nothing_or_several_platforms_is_exit_5() {
    let o = report(&all(), &["--baseline", "board=jetson-orin-nano"]);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("matches no platform")
            && e.contains("raspberrypi5/ort/cpu")
            && e.contains("coral-devboard/tflite/edgetpu"),
        "{e}"
    );
    let o = report(&all(), &["--baseline", "board=coral-devboard"]);
    assert_eq!(o.status.code(), Some(5));
    let e = stderr(&o);
    assert!(
        e.contains("ambiguous")
            && e.contains("coral-devboard/tflite/edgetpu; coral-devboard/tflite/cpu"),
        "{e}"
    );
    let o = report(&all(), &["--where", "board=nowhere"]);
    assert_eq!(o.status.code(), Some(5));
    assert!(stderr(&o).contains("--where left none of the 16 result records"));
    // A selector with an unknown key is a usage error (clap: 2).
    let o = report(&all(), &["--baseline", "colour=red"]);
    assert_eq!(o.status.code(), Some(2));
    let o2 = report(&all(), &["--knee-fraction", "1.5"]);
    assert_eq!(o2.status.code(), Some(2));
    assert!(stderr(&o2).contains("--knee-fraction 1.5 is not in (0, 1]"));
    assert!(
        stderr(&o).contains("unknown baseline key `colour`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bad_input_gets_a_clear_message_and_exit_4() {
    let d = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(fixture("rpi5_bc.jsonl")).unwrap();
    let w = |name: &str, text: &str| {
        let p = d.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    // Truncated last line: skipped with a note; what came before is reported.
    let cut = w("cut.jsonl", &format!("{good}{}", &good[..50]));
    let o = report(&[cut], &["--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("cut.jsonl:3: truncated last line skipped"),
        "{}",
        stderr(&o)
    );
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["results_used"], 2);
    // A line that is not a record, in the middle.
    let junk = w(
        "junk.jsonl",
        &format!(
            "{}\nRuntimeWarning: something\n{good}",
            good.lines().next().unwrap()
        ),
    );
    let o = report(&[junk], &[]);
    assert_eq!(o.status.code(), Some(4));
    assert!(
        stderr(&o).contains("junk.jsonl:2: not a result record")
            && stderr(&o).contains("RuntimeWarning"),
        "{}",
        stderr(&o)
    );
    // An empty file among good ones.
    let empty = w("empty.jsonl", "");
    let o = report(&[fixture("coral.jsonl"), empty], &[]);
    assert_eq!(o.status.code(), Some(4));
    assert!(
        stderr(&o).contains("empty.jsonl: empty file"),
        "{}",
        stderr(&o)
    );
    // Files of different schema versions.
    let v2 = w("v2.jsonl", &good.replace("\"schema\":1", "\"schema\":2"));
    let o = report(&[fixture("coral.jsonl"), v2], &[]);
    assert_eq!(o.status.code(), Some(4));
    let e = stderr(&o);
    assert!(
        e.contains("v2.jsonl:1: record schema 2, but this edgebench reads schema 1")
            && e.contains("coral.jsonl (from line 1): schema 1"),
        "{e}"
    );
    // A file that does not exist: exit 1.
    let o = report(&[d.path().join("nope.jsonl")], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("cannot open") && stderr(&o).contains("nope.jsonl"));
}

/// The README's "Comparing boards" example is what the committed files give.
#[test]
fn readme_example_matches_the_committed_files() {
    let dir = root().join("docs/report-example");
    let files = [
        dir.join("x86-ort-1.32.0.jsonl"),
        dir.join("x86-ort-1.19.2.jsonl"),
    ];
    let o = report(&files, &["--baseline", "runtime=1.19.2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let t = stdout(&o);
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = t.find("gains against").unwrap();
    let end = t.find("\n\nknee ").unwrap();
    assert!(
        readme.contains(&t[start..end]),
        "README gains table is stale:\n{}",
        &t[start..end]
    );
    for l in t.lines().filter(|l| l.starts_with("knee ")) {
        assert!(readme.contains(l), "README lacks `{l}`");
    }
}

/// `--db`: the fixture files imported into real fleet stores (SQLite and PostgreSQL)
/// read back into the same comparison, alone and together with a file.
#[test]
fn db_store_gives_the_same_report_as_the_files() {
    let d = tempfile::tempdir().unwrap();
    let lite = format!("sqlite:{}", d.path().join("fleet.sqlite").display());
    let pgs = pg::Postgres::start();
    let pg_db = pgs.new_db("report");
    let from_files = json(&all(), &["--baseline", "board=raspberrypi5"]);
    for db in [lite.as_str(), pg_db.as_str()] {
        let o = std::process::Command::new(bin())
            .arg("import")
            .args(all())
            .args(["--db", db])
            .output()
            .unwrap();
        assert!(o.status.success(), "import: {}", stderr(&o));
        let from_db = json(&[], &["--db", db, "--baseline", "board=raspberrypi5"]);
        for key in ["gains", "knees", "unpaired", "rows", "platforms"] {
            assert_eq!(from_db[key], from_files[key], "{db}: {key} differs");
        }
        assert_eq!(from_db["results_used"], 16);
        // A file and the store together: the store's Coral rows plus the file's again
        // are two runs of each Coral configuration.
        let both = json(
            &[fixture("coral.jsonl")],
            &["--db", db, "--baseline", "board=raspberrypi5"],
        );
        let r = find(&both, "rows", |r| {
            r["platform"] == "coral-devboard/tflite/edgetpu" && r["batch"] == 1
        });
        assert_eq!(r["runs"], 2, "{db}");
    }
    // A store file that is not there is an error, not a new empty store.
    let o = report(
        &[],
        &[
            "--db",
            &format!("sqlite:{}", d.path().join("nope.sqlite").display()),
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no such store file"), "{}", stderr(&o));
    assert!(!d.path().join("nope.sqlite").exists());
}
