//! The HTML report opened in real headless Chromium (Debian's `chromium`, installed by
//! `scripts/install-deps.sh test`): no console errors, every expected figure in the
//! rendered DOM, a screenshot that is not blank.

mod common;
use common::*;

use std::path::Path;
use std::process::{Command, Output};

fn chromium(profile: &Path, args: &[&str]) -> Output {
    let o = Command::new("timeout")
        .arg("120")
        .arg("chromium")
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("chromium is missing: run scripts/install-deps.sh test");
    assert!(o.status.success(), "chromium failed: {}", stderr(&o));
    o
}

/// Lines Chromium logs for the page's console (errors included).
fn console_lines(o: &Output) -> Vec<String> {
    stderr(o)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(String::from)
        .collect()
}

#[test]
fn html_report_loads_cleanly_in_chromium_with_every_figure() {
    let d = tempfile::tempdir().unwrap();
    let html = d.path().join("report.html");
    let files: Vec<_> = ["rpi5_a.jsonl", "rpi5_bc.jsonl", "coral.jsonl"]
        .iter()
        .map(|f| root().join("tests/fixtures/report").join(f))
        .collect();
    let o = Command::new(bin())
        .arg("report")
        .args(&files)
        .args([
            "--format",
            "html",
            "--baseline",
            "board=raspberrypi5",
            "--out",
        ])
        .arg(&html)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&html).unwrap();
    // Self-contained: nothing to fetch, no scripts.
    for banned in [
        "<script", "src=", "href=", "url(", "<link", "http://", "https://",
    ] {
        let hit = text.match_indices(banned).find(|(i, _)| {
            // SVG's own namespace declaration is an identifier, not a fetch.
            !text[*i..].starts_with("http://www.w3.org/")
        });
        assert!(hit.is_none(), "the report references `{banned}`");
    }

    // A page that does log a console error: proves the check below can fail.
    let profile = d.path().join("profile");
    let neg = d.path().join("neg.html");
    std::fs::write(
        &neg,
        "<!DOCTYPE html><html><body><script>console.error('probe-error')</script></body></html>",
    )
    .unwrap();
    let o = chromium(
        &profile,
        &["--dump-dom", &format!("file://{}", neg.display())],
    );
    assert!(
        console_lines(&o).iter().any(|l| l.contains("probe-error")),
        "console logging not captured: {}",
        stderr(&o)
    );

    let url = format!("file://{}", html.display());
    let o = chromium(&profile, &["--dump-dom", &url]);
    assert!(
        console_lines(&o).is_empty(),
        "console output: {:?}",
        console_lines(&o)
    );
    let dom = stdout(&o);
    // One architecture (mobilenet_v2) with every figure; gains exist (Edge TPU and
    // Coral CPU against the Pi); temperature and power are recorded in the fixtures.
    for kind in ["throughput", "latency", "gains", "temperature", "power"] {
        let tag = format!("data-kind=\"{kind}\" data-arch=\"mobilenet_v2\"");
        let at = dom
            .find(&tag)
            .unwrap_or_else(|| panic!("figure {kind} missing from the DOM"));
        let fig = &dom[at..at + dom[at..].find("</figure>").unwrap()];
        assert!(
            fig.contains("<svg") && fig.contains("<text"),
            "figure {kind} has no drawing"
        );
    }
    assert_eq!(dom.matches("<figure").count(), 5);
    // The knee is marked and the tables are there.
    assert!(dom.contains("knee 2 (2-8)"), "knee label missing");
    assert!(dom.contains("<td class=\"n\">4.25x</td>") && dom.contains("no measurable difference"));
    assert!(dom.contains("raspberrypi5/ort/cpu (baseline)"));

    // A screenshot, and it is not blank: many colours, a good share of non-white pixels.
    let png = d.path().join("shot.png");
    chromium(
        &profile,
        &[
            "--window-size=900,1400",
            &format!("--screenshot={}", png.display()),
            &url,
        ],
    );
    let o = Command::new("python3")
        .arg(root().join("tests/support/png_stats.py"))
        .arg(&png)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let s: Vec<f64> = stdout(&o)
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    assert_eq!((s[0], s[1]), (900.0, 1400.0));
    assert!(s[2] > 50.0, "only {} colours: blank page?", s[2]);
    assert!(s[3] > 0.05, "only {} of the pixels are not white", s[3]);
}
