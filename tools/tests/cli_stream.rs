//! Three `starling` processes stream to each other by address: a relay (`run`), a subscriber
//! that knows only the relay, and a publisher streaming a file through it.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn starling() -> Command {
    Command::new(env!("CARGO_BIN_EXE_starling"))
}

/// Kills the process when the test ends, however it ends.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn first_line(child: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    line.trim().to_string()
}

fn wait(child: &mut Proc, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            return status;
        }
        assert!(start.elapsed() < limit, "process did not finish in time");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_file_streams_from_publisher_to_subscriber_through_a_relay() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("owner.key");
    let out = starling()
        .args(["keygen", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success());
    let owner = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let address = format!("live/{owner}/clip");

    let mut relay = Proc(
        starling()
            .arg("run")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let relay_addr = first_line(&mut relay.0);

    // 300 KiB that differ everywhere, so any reordering or loss shows.
    let input: Vec<u8> = (0..300 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let input_path = dir.path().join("input.bin");
    std::fs::write(&input_path, &input).unwrap();
    let output_path = dir.path().join("output.bin");
    let frames = input.len().div_ceil(4096);

    let mut subscriber = Proc(
        starling()
            .args(["subscribe", &address, "--bootstrap", &relay_addr])
            .args(["--frames", &frames.to_string(), "--output"])
            .arg(&output_path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut publisher = Proc(
        starling()
            .args(["publish", "clip", "--bootstrap", &relay_addr, "--key"])
            .arg(&key)
            .args(["--file"])
            .arg(&input_path)
            .args([
                "--frame-bytes",
                "4096",
                "--fps",
                "200",
                "--start-after",
                "3",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let _multiaddr = first_line(&mut publisher.0);
    let status = wait(&mut publisher, Duration::from_secs(60));
    let mut publisher_err = String::new();
    std::io::Read::read_to_string(&mut publisher.0.stderr.take().unwrap(), &mut publisher_err)
        .unwrap();
    assert!(status.success(), "{publisher_err}");
    assert!(wait(&mut subscriber, Duration::from_secs(30)).success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut subscriber.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains(&format!("received {frames} frames")),
        "{stderr}"
    );
    assert!(stderr.contains("skipped 0;"), "{stderr}");
    assert_eq!(std::fs::read(&output_path).unwrap(), input);
}

#[test]
fn publishing_someone_elses_stream_is_refused() {
    let key = starling_net_key_peer();
    let out = starling()
        .args(["publish", &format!("live/{key}/x"), "--synthetic", "1Mbit"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is owned by"));
    let out = starling()
        .args(["subscribe", "live/nope/x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad stream address"));
}

/// A PeerId nobody here holds the key of.
fn starling_net_key_peer() -> String {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k");
    let out = starling()
        .args(["keygen", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn keygen(path: &std::path::Path) -> String {
    let out = starling()
        .args(["keygen", "--out"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A file published in 4 KiB frames at 100 fps, 3 s after start (subscribers attach first).
const PACED_4K_FRAMES: [&str; 6] = [
    "--frame-bytes",
    "4096",
    "--fps",
    "100",
    "--start-after",
    "3",
];

fn stderr_of(child: &mut Proc) -> String {
    let mut s = String::new();
    std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut s).unwrap();
    s
}

/// `publish --encrypt-to`: the receiver gets the file byte for byte through a relay that
/// cannot read it; a subscriber that is not a receiver reads no frame and says so.
#[test]
fn an_encrypted_stream_reaches_its_receiver_only() {
    let dir = tempfile::tempdir().unwrap();
    let (owner_key, reader_key) = (dir.path().join("owner.key"), dir.path().join("reader.key"));
    let owner = keygen(&owner_key);
    let reader = keygen(&reader_key);
    let address = format!("live/{owner}/secret");
    let mut relay = Proc(
        starling()
            .arg("run")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let relay_addr = first_line(&mut relay.0);
    let input: Vec<u8> = (0..64 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let input_path = dir.path().join("input.bin");
    std::fs::write(&input_path, &input).unwrap();
    let output_path = dir.path().join("output.bin");
    let frames = input.len().div_ceil(4096);
    let subscribe = |key: Option<&std::path::Path>, output: Option<&std::path::Path>| {
        let mut c = starling();
        c.args(["subscribe", &address, "--bootstrap", &relay_addr]);
        if let Some(k) = key {
            c.arg("--key").arg(k);
        }
        match output {
            Some(o) => c.args(["--frames", &frames.to_string(), "--output"]).arg(o),
            None => c.args(["--seconds", "12"]),
        };
        Proc(
            c.stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        )
    };
    let mut receiver = subscribe(Some(&reader_key), Some(&output_path));
    let mut outsider = subscribe(None, None);
    let mut publisher = Proc(
        starling()
            .args(["publish", "secret", "--bootstrap", &relay_addr, "--key"])
            .arg(&owner_key)
            .args(["--encrypt-to", &reader, "--file"])
            .arg(&input_path)
            .args(PACED_4K_FRAMES)
            .args(["--keyframe-every", "4"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let status = wait(&mut publisher, Duration::from_secs(60));
    let publisher_err = stderr_of(&mut publisher);
    assert!(status.success(), "{publisher_err}");
    assert!(
        publisher_err.contains("encrypted to 2 key(s)"),
        "{publisher_err}"
    );
    assert!(wait(&mut receiver, Duration::from_secs(30)).success());
    let err = stderr_of(&mut receiver);
    assert!(err.contains(&format!("received {frames} frames")), "{err}");
    assert_eq!(std::fs::read(&output_path).unwrap(), input);
    assert!(wait(&mut outsider, Duration::from_secs(30)).success());
    let err = stderr_of(&mut outsider);
    assert!(err.contains("received 0 frames"), "{err}");
    assert!(
        err.contains(&format!("not readable with this key {frames};")),
        "{err}"
    );
}

/// A stream owned by one key, published from another device its trust graph delegates to:
/// a subscriber that follows the graph gets the file byte for byte; a device nobody
/// delegated cannot publish it.
#[test]
fn a_delegated_device_publishes_its_owners_stream() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    std::fs::create_dir_all(path("owner")).unwrap();
    let owner = keygen(&path("owner").join("key"));
    let laptop = keygen(&path("laptop.key"));
    let trust = |args: &[&str]| {
        let out = starling()
            .arg("trust")
            .args(args)
            .arg("--data-dir")
            .arg(path("owner"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let graph = trust(&["create", "owner's devices"]);
    trust(&["add", &laptop]);
    let mut node = Proc(
        starling()
            .args(["run", "--replicate", &graph, "--data-dir"])
            .arg(path("owner"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let node_addr = first_line(&mut node.0);
    let address = format!("live/{owner}/cam");
    let input: Vec<u8> = (0..32 * 1024u32).map(|i| (i * 7 % 253) as u8).collect();
    std::fs::write(path("input.bin"), &input).unwrap();
    let frames = input.len().div_ceil(4096);
    let mut viewer = Proc(
        starling()
            .args(["subscribe", &address, "--bootstrap", &node_addr])
            .args(["--publisher", &laptop, "--trust", &graph])
            .args(["--frames", &frames.to_string(), "--output"])
            .arg(path("output.bin"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let publish = |key: &std::path::Path| {
        let mut c = starling();
        c.args(["publish", &address, "--bootstrap", &node_addr, "--key"])
            .arg(key)
            .args(["--trust", &graph, "--file"])
            .arg(path("input.bin"))
            .args(PACED_4K_FRAMES)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        Proc(c.spawn().unwrap())
    };
    keygen(&path("stranger.key"));
    let mut stranger = publish(&path("stranger.key"));
    let mut from_laptop = publish(&path("laptop.key"));
    let status = wait(&mut from_laptop, Duration::from_secs(60));
    let err = stderr_of(&mut from_laptop);
    assert!(status.success(), "{err}");
    assert!(wait(&mut viewer, Duration::from_secs(30)).success());
    let err = stderr_of(&mut viewer);
    assert!(err.contains(&format!("received {frames} frames")), "{err}");
    assert_eq!(std::fs::read(path("output.bin")).unwrap(), input);
    assert!(!wait(&mut stranger, Duration::from_secs(30)).success());
    let err = stderr_of(&mut stranger);
    assert!(err.contains("not a delegate"), "{err}");
}
