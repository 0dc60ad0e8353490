//! Two `starling` processes: `run` prints its multiaddr, `ping` dials it by that address.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

struct Node {
    child: Child,
    addr: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_node(extra: &[&str]) -> Node {
    let mut child = Command::new(env!("CARGO_BIN_EXE_starling"))
        .arg("run")
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    Node {
        child,
        addr: line.trim().to_string(),
    }
}

fn ping(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_starling"))
        .arg("ping")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn ping_authenticates_and_streams_frames() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("node.key");
    let out = Command::new(env!("CARGO_BIN_EXE_starling"))
        .args(["keygen", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    let peer_id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let node = start_node(&["--key", key.to_str().unwrap()]);
    assert!(
        node.addr.starts_with("/ip4/127.0.0.1/udp/"),
        "{}",
        node.addr
    );
    assert!(
        node.addr.ends_with(&format!("/quic-v1/p2p/{peer_id}")),
        "{}",
        node.addr
    );

    let out = ping(&[
        &node.addr,
        "--count",
        "3",
        "--frames",
        "200",
        "--frame-bytes",
        "16384",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], peer_id);
    for (i, line) in lines[1..4].iter().enumerate() {
        assert!(line.starts_with(&format!("seq={} rtt=", i + 1)), "{line}");
    }
    assert!(lines[4].starts_with("streamed 200 frames"), "{}", lines[4]);
}

#[test]
fn wrong_peer_id_is_refused() {
    let node = start_node(&[]);
    let other = "12D3KooWHiVVwUzdYE7kNB7CfcqgfQvkbMKrQvGZCyihmBCfRsgR";
    let (base, _) = node.addr.rsplit_once("/p2p/").unwrap();
    let out = ping(&[&format!("{base}/p2p/{other}")]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("peer id mismatch"), "{stderr}");
}

#[test]
fn unreachable_address_is_a_clear_error() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let out = ping(&[
        &format!("/ip4/127.0.0.1/udp/{port}/quic-v1"),
        "--timeout",
        "0.5",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no answer"), "{stderr}");
    let out = ping(&["/ip4/127.0.0.1/tcp/80"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported multiaddr"));
}
