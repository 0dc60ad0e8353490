//! `starling-loadtest fanout` as a user runs it: a small swarm over two worker processes, with
//! the raw quinn baseline, writing the .hgrm and .svg and ending with the JSON line.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::process::Command;

fn field(json: &str, key: &str) -> f64 {
    let at = json.find(&format!("\"{key}\":")).unwrap() + key.len() + 3;
    let rest = &json[at..];
    let end = rest.find([',', '}']).unwrap();
    rest[..end].trim_matches('"').parse().unwrap()
}

#[test]
fn a_small_swarm_over_two_processes_reports_everything() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_starling-loadtest"))
        .args([
            "fanout",
            "--subscribers",
            "6",
            "--seconds",
            "2",
            "--procs",
            "2",
        ])
        .args(["--bitrate", "1Mbit", "--max-children", "2", "--out-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = stdout.lines().last().unwrap();
    assert_eq!(field(json, "subscribers"), 6.0);
    assert_eq!(field(json, "procs"), 2.0);
    // Loopback at 1 Mbit/s: everything arrives, and both runs moved bytes.
    assert_eq!(field(json, "delivered_ratio"), 1.0, "{json}");
    assert!(field(json, "raw_quinn_aggregate_mb_s") > 0.0);
    assert!(field(json, "p99_ms") > 0.0);
    let hgrm = std::fs::read_to_string(dir.path().join("fanout-1x6-4166b.hgrm")).unwrap();
    assert!(hgrm.contains("Percentile") && hgrm.contains("#[Max"));
    let svg = std::fs::read_to_string(dir.path().join("fanout-1x6-4166b.svg")).unwrap();
    assert!(svg.starts_with("<svg"));
}

#[test]
fn bad_arguments_are_clear_errors() {
    for args in [
        &["fanout", "--subscribers", "0"][..],
        &["fanout", "--bitrate", "fast"][..],
        &["fanout", "--throttle", "2"][..],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_starling-loadtest"))
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
    }
}
