//! `starling demo` end to end: a small swarm streams through the overlay and every frame
//! arrives.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::process::Command;

#[test]
fn a_small_demo_delivers_every_frame() {
    let out = Command::new(env!("CARGO_BIN_EXE_starling"))
        .args([
            "demo",
            "--subscribers",
            "6",
            "--seconds",
            "2",
            "--max-children",
            "2",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("frames delivered:"))
        .unwrap();
    // "frames delivered: D / E (…)"
    let nums: Vec<u64> = line["frames delivered:".len()..]
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .take(2)
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(nums[0], nums[1], "{line}");
    assert_eq!(nums[1], 6 * 60);
    assert!(stdout.contains("tree: depth 1: 2"), "{stdout}");
}

#[test]
fn bad_bitrate_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_starling"))
        .args(["demo", "--bitrate", "fast"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad bitrate"));
}
