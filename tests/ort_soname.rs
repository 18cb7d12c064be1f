//! ONNX Runtime found by the dynamic loader's soname search, after every listed path:
//! the way a multilib image (library in /usr/lib64) or an `LD_LIBRARY_PATH` install is
//! found. The binary runs from a directory with no `.deps/` above it, with no library
//! configured, and the only copy of ONNX Runtime is `libonnxruntime.so.1` in a
//! directory named by `LD_LIBRARY_PATH`.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The binary, linked (or copied) four directories deep into a temp dir, so that none
/// of its ancestors holds the project-local `.deps/onnxruntime`.
fn lone_binary(tmp: &Path) -> PathBuf {
    let dir = tmp.join("a/b/c/d");
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("edgebench");
    if std::fs::hard_link(bin(), &exe).is_err() {
        std::fs::copy(bin(), &exe).expect("copy the binary");
    }
    exe
}

/// The real library (the file behind `.deps/onnxruntime/lib/libonnxruntime.so`) under
/// its soname only, in `dir`.
fn soname_dir(tmp: &Path) -> PathBuf {
    let real = std::fs::canonicalize(ort_lib()).unwrap();
    let dir = tmp.join("lib64");
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(&real, dir.join("libonnxruntime.so.1")).unwrap();
    dir
}

fn config(tmp: &Path) -> PathBuf {
    let cfg = tmp.join("edgebench.toml");
    let text = format!(
        "[onnxruntime]\nlibrary = \"\"\n[models]\ndir = \"{}\"\n[store]\ndir = \"{}\"\n\
         [protocol]\nwarmup_runs = 1\nwarmup_s = 0.0\nmin_runs = 5\nmin_s = 0.02\nmax_s = 1.0\ncooldown_max_s = 0.0\n",
        fixture_models().display(),
        tmp.join("store").display()
    );
    std::fs::write(&cfg, text).unwrap();
    cfg
}

fn command(exe: &Path, tmp: &Path, libdir: Option<&Path>) -> Command {
    let mut c = Command::new(exe);
    c.current_dir(tmp);
    scrub(&mut c);
    match libdir {
        Some(d) => c.env("LD_LIBRARY_PATH", d),
        None => c.env_remove("LD_LIBRARY_PATH"),
    };
    c
}

#[test]
fn library_found_by_soname_through_the_dynamic_loader() {
    // Skip nothing: if the system has its own ONNX Runtime in a listed path, this test
    // cannot tell the two apart, so it says so.
    for dir in ["/usr/lib", "/usr/local/lib"] {
        assert!(
            !Path::new(dir).join("libonnxruntime.so.1").exists()
                && !Path::new(dir).join("libonnxruntime.so").exists(),
            "a system ONNX Runtime in {dir} would be found before the soname search"
        );
    }
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let exe = lone_binary(tmp.path());
    let libdir = soname_dir(tmp.path());
    let cfg = config(tmp.path());

    let o = command(&exe, tmp.path(), Some(&libdir))
        .args(["info", "--json", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let info: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let lib = info["ort_library"].as_str().unwrap_or_default();
    assert_eq!(
        Path::new(lib),
        libdir.join("libonnxruntime.so.1"),
        "info: {info}"
    );
    assert!(
        info["ort_version"]
            .as_str()
            .unwrap_or_default()
            .starts_with("1."),
        "{info}"
    );

    // A real run with it: records name the runtime version.
    let out = tmp.path().join("r.jsonl");
    let o = command(&exe, tmp.path(), Some(&libdir))
        .args([
            "run",
            "--models",
            "tiny_cnn",
            "--batch",
            "1",
            "--threads",
            "1",
        ])
        .arg("--config")
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let recs = json_lines(&std::fs::read_to_string(&out).unwrap());
    let res = results(&recs);
    assert_eq!(res.len(), 1);
    assert_eq!(res[0]["status"], "ok", "{}", res[0]);
    assert_eq!(res[0]["runtime_version"], info["ort_version"]);

    // Without the loader path: the error lists the soname search last.
    let o = command(&exe, tmp.path(), None)
        .args(["info", "--json", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let text = stdout(&o) + &stderr(&o);
    assert!(
        text.contains("libonnxruntime.so.1 (dynamic loader search)"),
        "{text}"
    );
}
