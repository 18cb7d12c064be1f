//! Man pages and shell completions (`edgebench gen-docs`, committed under
//! packaging/docs/ for the packages): current with the CLI, one page per subcommand,
//! rendered by groff and man without warnings, completions that parse and complete.

mod common;
use common::*;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

const REGEN: &str = "scripts/gen-docs.sh";

/// Subcommands `edgebench help` lists (help itself left out).
fn subcommands() -> Vec<String> {
    let o = Command::new(bin()).arg("help").output().unwrap();
    assert!(o.status.success());
    let text = stdout(&o);
    let mut names = Vec::new();
    let mut in_list = false;
    for line in text.lines() {
        if line.starts_with("Commands:") {
            in_list = true;
            continue;
        }
        if in_list {
            let Some(name) = line.split_whitespace().next() else {
                break;
            };
            if name != "help" {
                names.push(name.to_string());
            }
        }
    }
    assert!(
        names.len() >= 5,
        "cannot read the subcommands from:\n{text}"
    );
    names
}

fn generate(dir: &Path) {
    let o = Command::new(bin())
        .arg("gen-docs")
        .arg("--man")
        .arg(dir.join("man"))
        .arg("--completions")
        .arg(dir.join("completions"))
        .output()
        .unwrap();
    assert!(o.status.success(), "gen-docs: {}", stderr(&o));
}

fn files(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn committed_docs_match_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    generate(tmp.path());
    for sub in ["man", "completions"] {
        let fresh = tmp.path().join(sub);
        let committed = root().join("packaging/docs").join(sub);
        assert_eq!(
            files(&fresh),
            files(&committed),
            "packaging/docs/{sub} is out of date with the CLI: run {REGEN} and commit packaging/docs"
        );
        for name in files(&fresh) {
            let a = std::fs::read(fresh.join(&name)).unwrap();
            let b = std::fs::read(committed.join(&name)).unwrap();
            assert!(
                a == b,
                "packaging/docs/{sub}/{name} is out of date with the CLI: run {REGEN} and commit packaging/docs"
            );
        }
    }
}

#[test]
fn every_subcommand_has_a_man_page_that_renders() {
    let man = root().join("packaging/docs/man");
    let mut pages = vec![("edgebench".to_string(), man.join("edgebench.1"))];
    for s in subcommands() {
        pages.push((
            format!("edgebench-{s}"),
            man.join(format!("edgebench-{s}.1")),
        ));
    }
    assert!(
        !files(&man).contains("edgebench-gen-docs.1"),
        "the hidden generator has a page"
    );
    for (name, page) in &pages {
        assert!(page.is_file(), "{} missing: run {REGEN}", page.display());
        // groff with all warnings on: any warning is a fault in the page.
        let o = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(page)
            .output()
            .expect("groff (groff-base) is installed by scripts/install-deps.sh test");
        assert!(
            o.status.success() && o.stderr.is_empty(),
            "groff warns about {}: {}",
            page.display(),
            stderr(&o)
        );
        let o = Command::new("man")
            .args(["-l", "-P", "cat"])
            .arg(page)
            .env("MANWIDTH", "100")
            .output()
            .expect("man (man-db) is installed by scripts/install-deps.sh test");
        assert!(
            o.status.success(),
            "man -l {}: {}",
            page.display(),
            stderr(&o)
        );
        let text = stdout(&o);
        assert!(
            text.contains("NAME") && text.contains("SYNOPSIS") && text.contains(name.as_str()),
            "{} renders without its name:\n{text}",
            page.display()
        );
    }
    // The top page lists every subcommand.
    let top = std::fs::read_to_string(man.join("edgebench.1")).unwrap();
    for s in subcommands() {
        let roff_name = format!("edgebench\\-{}(1)", s.replace('-', "\\-"));
        assert!(top.contains(&roff_name), "edgebench.1 does not list {s}");
    }
}

#[test]
fn completions_parse_and_complete_subcommands() {
    let dir = root().join("packaging/docs/completions");
    let subs = subcommands();
    for (shell, file) in [
        ("bash", "edgebench.bash"),
        ("zsh", "_edgebench"),
        ("fish", "edgebench.fish"),
    ] {
        let path = dir.join(file);
        let o = Command::new(shell)
            .arg("-n")
            .arg(&path)
            .output()
            .unwrap_or_else(|e| panic!("{shell} ({e}): installed by scripts/install-deps.sh test"));
        assert!(
            o.status.success(),
            "{shell} -n {}: {}",
            path.display(),
            stderr(&o)
        );
        let text = std::fs::read_to_string(&path).unwrap();
        for s in &subs {
            assert!(text.contains(s.as_str()), "{file} lacks subcommand {s}");
        }
        assert!(
            !text.contains("gen-docs"),
            "{file} offers the hidden generator"
        );
    }
    // bash: load the completion and complete `edgebench ru` and `edgebench run --ba`.
    let script = format!(
        "source '{}'\n\
         COMP_WORDS=(edgebench ru); COMP_CWORD=1; COMP_LINE='edgebench ru'; COMP_POINT=12\n\
         _edgebench edgebench ru edgebench; echo \"1:${{COMPREPLY[*]}}\"\n\
         COMP_WORDS=(edgebench run --ba); COMP_CWORD=2; COMP_LINE='edgebench run --ba'; COMP_POINT=18\n\
         _edgebench edgebench --ba run; echo \"2:${{COMPREPLY[*]}}\"\n",
        dir.join("edgebench.bash").display()
    );
    let o = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    let out = stdout(&o);
    assert!(
        out.contains("1:run"),
        "bash completion of `edgebench ru`: {out}{}",
        stderr(&o)
    );
    assert!(
        out.contains("--batch"),
        "bash completion of `edgebench run --ba`: {out}"
    );
    // fish: ask fish itself.
    let o = Command::new("fish")
        .arg("-c")
        .arg(format!(
            "source '{}'; complete -C 'edgebench ru'",
            dir.join("edgebench.fish").display()
        ))
        .output()
        .unwrap();
    assert!(
        stdout(&o).lines().any(|l| l.starts_with("run")),
        "fish: {}",
        stdout(&o)
    );
}
