//! `starling keygen` / `starling id` as a user runs them.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::process::Command;

fn starling() -> Command {
    Command::new(env!("CARGO_BIN_EXE_starling"))
}

fn stdout_line(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn id_of_secret_hex_matches_vector() {
    let out = starling()
        .args(["id", "--type", "secp256k1", "--secret-hex"])
        .arg("383f464d545b626970777e858c939aa1a8afb6bdc4cbd2d9e0e7eef5fc030a11")
        .output()
        .unwrap();
    assert_eq!(
        stdout_line(&out),
        "16Uiu2HAkwDDcUh6a8SE87MGRj4xS26xY3WXYEsCYeVEk7YEynvkj"
    );
}

#[test]
fn keygen_then_id_agree() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("node.key");
    for kt in ["ed25519", "secp256k1"] {
        let out = starling()
            .args(["keygen", "--force", "--type", kt, "--out"])
            .arg(&key)
            .output()
            .unwrap();
        let generated = stdout_line(&out);
        let out = starling().args(["id", "--key"]).arg(&key).output().unwrap();
        assert_eq!(stdout_line(&out), generated);
    }
    // Refuses to overwrite without --force.
    let out = starling()
        .args(["keygen", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
}

#[test]
fn bad_input_is_a_clear_error() {
    let cases: [&[&str]; 3] = [
        &["id", "--secret-hex", "zz"],
        &["id", "--secret-hex", "0102"],
        &[
            "id",
            "--type",
            "secp256k1",
            "--secret-hex",
            &"ff".repeat(32),
        ],
    ];
    let expected = ["not valid hex", "must be 32 bytes", "out of range"];
    for (args, want) in cases.iter().zip(expected) {
        let out = starling().args(*args).output().unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
    let out = starling()
        .args(["id", "--key", "/nonexistent/key"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/key"));
}
