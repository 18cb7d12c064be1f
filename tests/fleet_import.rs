//! `edgebench import`: a real `edgebench run` results file (real ONNX Runtime, the
//! committed tiny model) into SQLite and PostgreSQL, twice (nothing new the second
//! time), with bad lines counted and named.

#[path = "common/broker.rs"]
mod broker;
mod common;
#[path = "common/postgres.rs"]
mod pg;

use common::{stderr, stdout, Env};
use edgebench::fleet::{self, Filter};

fn import(env: &Env, db: &str, files: &[&str]) -> std::process::Output {
    let mut c = std::process::Command::new(common::bin());
    c.current_dir(env.dir.path())
        .arg("import")
        .args(files)
        .args(["--db", db]);
    common::scrub(&mut c);
    c.output().expect("run edgebench import")
}

#[test]
fn import_is_idempotent_and_counts_bad_lines_in_both_engines() {
    let env = Env::new(&common::ort_lib(), "");
    let o = env.run(
        "run",
        &[
            "--models",
            "tiny_cnn",
            "--batch",
            "1,2",
            "--out",
            "desk.jsonl",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(env.path("desk.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "two results and a summary: {text}");
    let mut bad = String::new();
    bad.push_str(lines[0]);
    bad.push('\n');
    bad.push_str("this is not json\n\n");
    bad.push_str(&lines[1].replace("\"batch\":2", "\"batch\":\"two\""));
    bad.push('\n');
    bad.push_str(&lines[1].replace("\"schema\":1", "\"schema\":42"));
    bad.push('\n');
    std::fs::write(env.path("mixed.jsonl"), bad).unwrap();

    let pgs = pg::Postgres::start();
    let pg_db = pgs.new_db("desk");
    let lite = format!("sqlite:{}", env.path("fleet.sqlite").display());
    for db in [lite.as_str(), pg_db.as_str()] {
        let o = import(&env, db, &["desk.jsonl"]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(
            stdout(&o).trim(),
            "desk.jsonl: 3 new, 0 already present, 0 bad"
        );
        let o = import(&env, db, &["desk.jsonl", "mixed.jsonl"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let out = stdout(&o);
        assert!(
            out.contains("desk.jsonl: 0 new, 3 already present, 0 bad"),
            "{out}"
        );
        assert!(
            out.contains("mixed.jsonl: 0 new, 1 already present, 3 bad"),
            "{out}"
        );
        assert!(
            out.contains("total: 0 new, 4 already present, 3 bad"),
            "{out}"
        );
        let err = stderr(&o);
        assert!(err.contains("mixed.jsonl:2: skipped (not_json)"), "{err}");
        assert!(err.contains("mixed.jsonl:4: skipped (wrong_type)"), "{err}");
        assert!(err.contains("`batch` must be an integer"), "{err}");
        assert!(err.contains("mixed.jsonl:5: skipped (schema)"), "{err}");

        let mut s = fleet::open(db).unwrap();
        let (recs, bad) = fleet::store::records(s.as_mut(), &Filter::default()).unwrap();
        assert!(bad.is_empty(), "{bad:?}");
        let from_file: Vec<edgebench::bench::result::Record> = lines
            .iter()
            .map(|l| edgebench::bench::result::Record::from_json(l).unwrap())
            .collect();
        // Results first, then summaries, each oldest first: the file's order here.
        assert_eq!(recs, from_file, "records read back equal the file");
    }
    let o = import(&env, "mysql://nope", &["desk.jsonl"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("mysql://nope"), "{}", stderr(&o));
}
