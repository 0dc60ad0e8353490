//! `starling docs` from the shell: a local store (create, put, get, query, del) with every kind
//! of bad input refused whole, and three processes replicating a store by address — two
//! `starling run --replicate` and a writer — with one replicator offline meanwhile catching up.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn starling() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_starling"));
    c.env("RUST_LOG", "warn");
    c
}

/// Kills the process when the test ends, however it ends.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `starling docs ARGS… --data-dir DIR` with `stdin`.
fn docs(dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = starling()
        .arg("docs")
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn failed(out: &Output) -> String {
    assert!(!out.status.success(), "succeeded: {:?}", out);
    let err = String::from_utf8(out.stderr.clone()).unwrap();
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    err
}

#[test]
fn a_local_store_puts_gets_queries_and_refuses_bad_input_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("replica");
    let address = ok(&docs(&dir, &["create", "posts"], "")).trim().to_string();
    let posts = concat!(
        r#"{"id":"p1","title":"Hello world","likes":3,"tags":["rust","p2p"],"author":{"name":"ann"}}"#,
        "\n",
        r#"{"id":"p2","title":"Second","likes":10.5}"#,
        "\n",
        r#"{"id":7,"title":"hello again","likes":1}"#,
        "\n"
    );
    assert_eq!(
        ok(&docs(&dir, &["put", &address], posts)),
        "\"p1\"\n\"p2\"\n7\n"
    );
    let p1 = ok(&docs(&dir, &["get", &address, "p1"], ""));
    assert!(p1.contains(r#""title":"Hello world""#), "{p1}");
    assert!(ok(&docs(&dir, &["get", &address, "7"], "")).contains("hello again"));
    assert!(failed(&docs(&dir, &["get", &address, "p9"], "")).contains("not found"));
    let q = ok(&docs(
        &dir,
        &[
            "query",
            &address,
            "--where",
            r#"likes > 2 and (tags = "rust" or title ~i= "SEC")"#,
            "--sort",
            "likes:desc",
        ],
        "",
    ));
    let ids: Vec<&str> = q
        .lines()
        .map(|l| if l.contains("\"p2\"") { "p2" } else { "p1" })
        .collect();
    assert_eq!(ids, ["p2", "p1"], "{q}");
    let nested = ok(&docs(
        &dir,
        &["query", &address, "--where", r#"author.name = "ann""#],
        "",
    ));
    assert_eq!(nested.lines().count(), 1);
    let count = |dir: &Path| {
        ok(&docs(dir, &["query", &address, "--count"], ""))
            .trim()
            .to_string()
    };
    assert_eq!(count(&dir), "3");
    // Bad input: one clear line, non-zero exit, nothing written (the good line before a bad
    // one is not stored either).
    for (stdin, why) in [
        ("{\"id\":\"ok\"}\nnot json\n", "not valid JSON"),
        ("{\"title\":\"no id\"}\n", "no \"id\" field"),
        ("[1,2]\n", "JSON object"),
        ("{\"id\":[1]}\n", "string or an integer"),
    ] {
        let err = failed(&docs(&dir, &["put", &address], stdin));
        assert!(err.contains(why), "{err}");
    }
    assert_eq!(count(&dir), "3");
    let err = failed(&docs(&dir, &["query", &address, "--where", "likes >"], ""));
    assert!(err.contains("--where"), "{err}");
    let unknown = "bafkr4ifd7bvhxytd3dz3d3moofzopdhchex5k3lu6bbj3fofn5gtlm3bdi";
    assert!(failed(&docs(&dir, &["query", unknown], "")).contains("unknown store"));
    assert!(ok(&docs(&dir, &["del", &address, "p2"], "")).contains("deleted"));
    assert!(failed(&docs(&dir, &["del", &address, "p2"], "")).contains("not found"));
    assert_eq!(count(&dir), "2");
    // An immutable store keeps the first version.
    let frozen = ok(&docs(&dir, &["create", "frozen", "--immutable"], ""))
        .trim()
        .to_string();
    ok(&docs(
        &dir,
        &["put", &frozen, "--json", r#"{"id":1,"v":1}"#],
        "",
    ));
    let err = failed(&docs(
        &dir,
        &["put", &frozen, "--json", r#"{"id":1,"v":2}"#],
        "",
    ));
    assert!(err.contains("immutable"), "{err}");
}

fn first_line(child: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    line.trim().to_string()
}

fn replicator(dir: &Path, address: &str, bootstrap: Option<&str>) -> (Proc, String) {
    let mut cmd = starling();
    cmd.arg("run")
        .arg("--data-dir")
        .arg(dir)
        .args(["--replicate", address]);
    if let Some(b) = bootstrap {
        cmd.args(["--bootstrap", b]);
    }
    let mut child = Proc(
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let addr = first_line(&mut child.0);
    assert!(addr.starts_with("/ip4/"), "{addr:?}");
    (child, addr)
}

#[test]
fn three_processes_replicate_a_store_and_an_offline_one_catches_up() {
    let tmp = tempfile::tempdir().unwrap();
    let (r1_dir, r2_dir, writer) = (
        tmp.path().join("r1"),
        tmp.path().join("r2"),
        tmp.path().join("writer"),
    );
    let address = ok(&docs(&r1_dir, &["create", "shared"], ""))
        .trim()
        .to_string();
    let (r1, r1_addr) = replicator(&r1_dir, &address, None);
    // The second replicator fetches the definition from the first.
    let (r2, r2_addr) = replicator(&r2_dir, &address, Some(&r1_addr));
    // One put through r1 reaches both replicators (the writer waits for 2 acknowledgements).
    let put = docs(
        &writer,
        &["put", &address, "--bootstrap", &r1_addr, "--replicas", "2"],
        "{\"id\":1,\"t\":\"a\"}\n{\"id\":2,\"t\":\"b\"}\n",
    );
    assert_eq!(ok(&put), "1\n2\n");
    let remote_count = |via: &str, dir: &str| {
        let out = docs(
            &tmp.path().join(dir),
            &["query", &address, "--bootstrap", via, "--remote", "--count"],
            "",
        );
        ok(&out).trim().to_string()
    };
    assert_eq!(remote_count(&r2_addr, "reader1"), "2");
    // r2 goes offline; a write lands on r1 alone.
    drop(r2);
    let put = docs(
        &writer,
        &[
            "put",
            &address,
            "--bootstrap",
            &r1_addr,
            "--json",
            r#"{"id":3,"t":"while r2 was down"}"#,
        ],
        "",
    );
    assert_eq!(ok(&put), "3\n");
    // r2 comes back on its data directory and reconciles with r1 (its stats lines say how
    // many documents it holds).
    let mut r2 = Proc(
        starling()
            .env("RUST_LOG", "info")
            .arg("run")
            .arg("--data-dir")
            .arg(&r2_dir)
            .args(["--replicate", &address, "--bootstrap", &r1_addr])
            .args(["--stats-every", "0.2"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    first_line(&mut r2.0);
    let log = BufReader::new(r2.0.stderr.take().unwrap());
    // Its directory is locked while it runs: a clear error.
    let err = failed(&docs(&r2_dir, &["query", &address, "--count"], ""));
    assert!(err.contains("in use by another running node"), "{err}");
    let start = Instant::now();
    for line in log.lines() {
        if line.unwrap().contains("documents=3") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "r2 did not catch up"
        );
    }
    drop(r2);
    let out = docs(&r2_dir, &["get", &address, "3"], "");
    assert!(ok(&out).contains("while r2 was down"));
    drop(r1);
}

/// `docs watch` is a replicator too: a write made through another node reaches it, and it
/// prints the change as a JSON line.
#[test]
fn watch_prints_a_change_written_elsewhere() {
    let tmp = tempfile::tempdir().unwrap();
    let r1_dir = tmp.path().join("r1");
    let address = ok(&docs(&r1_dir, &["create", "watched"], ""))
        .trim()
        .to_string();
    let (_r1, r1_addr) = replicator(&r1_dir, &address, None);
    let mut watch = Proc(
        starling()
            .args([
                "docs",
                "watch",
                &address,
                "--bootstrap",
                &r1_addr,
                "--data-dir",
            ])
            .arg(tmp.path().join("watcher"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Both replicators hold it once the put returns.
    let put = docs(
        &tmp.path().join("writer"),
        &["put", &address, "--bootstrap", &r1_addr, "--replicas", "2"],
        "{\"id\":\"w1\",\"t\":\"seen\"}\n",
    );
    assert_eq!(ok(&put), "\"w1\"\n");
    let line = first_line(&mut watch.0);
    let change: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(change["added"], "w1");
    assert_eq!(change["doc"]["t"], "seen");
}

/// A sharded store (`--min-replicas 2`) across three `starling run --replicate` processes: a
/// writer's documents are found by a search across shards; one replicator is killed and the
/// others bring every document back to two copies — shown by killing a second one: the last
/// holds them all.
#[test]
fn a_sharded_store_survives_killed_replicators_across_processes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = |name: &str| tmp.path().join(name);
    let address = ok(&docs(
        &dir("r1"),
        &["create", "sharded", "--min-replicas", "2"],
        "",
    ))
    .trim()
    .to_string();
    let (r1, r1_addr) = replicator(&dir("r1"), &address, None);
    // Each picks its range after hearing the others (two seconds): start them in turn.
    std::thread::sleep(Duration::from_millis(2500));
    let (r2, _) = replicator(&dir("r2"), &address, Some(&r1_addr));
    std::thread::sleep(Duration::from_millis(2500));
    let (r3, _) = replicator(&dir("r3"), &address, Some(&r1_addr));
    std::thread::sleep(Duration::from_millis(2500));
    let lines: String = (0..30)
        .map(|i| format!("{{\"id\":{i},\"n\":{i}}}\n"))
        .collect();
    let put = docs(
        &dir("writer"),
        &["put", &address, "--bootstrap", &r1_addr, "--replicas", "2"],
        &lines,
    );
    assert_eq!(ok(&put).lines().count(), 30);
    let count = |reader: &str| {
        let out = docs(
            &dir(reader),
            &[
                "query",
                &address,
                "--bootstrap",
                &r1_addr,
                "--remote",
                "--count",
            ],
            "",
        );
        ok(&out).trim().to_string()
    };
    assert_eq!(count("reader1"), "30", "a search across the shards");
    drop(r3);
    // Detected in 3 s, then re-replicated.
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(count("reader2"), "30");
    drop(r2);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(count("reader3"), "30", "r1 alone holds every document");
    drop(r1);
}

/// `put --encrypt-to`: a replicator that is not a receiver stores and serves the document;
/// the receiver reads it remotely, anyone else gets a clear error, and a local query says how
/// many documents it could not read.
#[test]
fn an_encrypted_document_is_read_by_its_receivers_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = |name: &str| tmp.path().join(name);
    std::fs::create_dir_all(dir("bob")).unwrap();
    let keygen = starling()
        .args(["keygen", "--out"])
        .arg(dir("bob").join("key"))
        .output()
        .unwrap();
    let bob = ok(&keygen).trim().to_string();
    let address = ok(&docs(&dir("r"), &["create", "private"], ""))
        .trim()
        .to_string();
    let (r, r_addr) = replicator(&dir("r"), &address, None);
    // The writer's puts through r: `extra` arguments, the document on stdin.
    let put = |extra: &[&str], doc: &str| {
        let args = ["put", &address, "--bootstrap", &r_addr];
        docs(&dir("writer"), &[&args[..], extra].concat(), doc)
    };
    let secret = put(&["--encrypt-to", &bob], "{\"id\":\"s\",\"t\":\"secret\"}\n");
    assert_eq!(ok(&secret), "\"s\"\n");
    ok(&put(&["--json", r#"{"id":"p","t":"public"}"#], ""));
    let remote_get = |who: &str| {
        docs(
            &dir(who),
            &["get", &address, "s", "--remote", "--bootstrap", &r_addr],
            "",
        )
    };
    assert!(ok(&remote_get("bob")).contains("secret"));
    // Its indexed values are public: r, which cannot read it, finds it for bob's query, and
    // answers carol (not a receiver) without it. With --sealed-index, r does not find it.
    ok(&put(
        &["--encrypt-to", &bob, "--sealed-index"],
        "{\"id\":\"h\",\"t\":\"secret\"}\n",
    ));
    let remote_query = |who: &str| {
        let args = ["query", &address, "--remote", "--bootstrap", &r_addr];
        ok(&docs(
            &dir(who),
            &[&args[..], &["--where", r#"t = "secret""#]].concat(),
            "",
        ))
    };
    assert_eq!(remote_query("bob").trim(), r#"{"id":"s","t":"secret"}"#);
    assert_eq!(remote_query("carol"), "");
    let err = failed(&remote_get("carol"));
    assert!(
        err.contains("encrypted and this key cannot read it"),
        "{err}"
    );
    // The writer is always a receiver.
    assert!(ok(&docs(&dir("writer"), &["get", &address, "s"], "")).contains("secret"));
    drop(r);
    // The replicator's own copy: one readable document, two it could not read.
    let out = docs(&dir("r"), &["query", &address], "");
    assert_eq!(ok(&out).lines().count(), 1);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("2 document(s) here are encrypted"), "{err}");
    let bad = docs(
        &dir("writer"),
        &["put", &address, "--encrypt-to", "not-a-peer-id"],
        "{\"id\":\"x\"}\n",
    );
    let err = failed(&bad);
    assert!(err.contains("--encrypt-to not-a-peer-id"), "{err}");
}

/// A second device writes through a delegation, from the shell: the root creates a trust
/// graph, delegates to the laptop's key and creates a store only trusted keys write; a
/// replicator serves both; the laptop writes, a stranger cannot; after the root revokes the
/// laptop, its next write is refused and its first stays.
#[test]
fn a_second_device_writes_through_a_delegation_from_the_shell() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = |name: &str| tmp.path().join(name);
    std::fs::create_dir_all(dir("laptop")).unwrap();
    let laptop = ok(&starling()
        .args(["keygen", "--out"])
        .arg(dir("laptop").join("key"))
        .output()
        .unwrap())
    .trim()
    .to_string();
    let trust = |d: &str, args: &[&str]| {
        starling()
            .arg("trust")
            .args(args)
            .arg("--data-dir")
            .arg(dir(d))
            .output()
            .unwrap()
    };
    let graph = ok(&trust("root", &["create", "alice's devices"]))
        .trim()
        .to_string();
    assert!(ok(&trust("root", &["add", &laptop])).contains("delegated"));
    let writers = format!("trusted:{graph}");
    let address = ok(&docs(
        &dir("root"),
        &["create", "notes", "--writers", &writers],
        "",
    ))
    .trim()
    .to_string();
    let check = trust("root", &["check", &laptop]);
    assert!(ok(&check).contains(&format!("→ {laptop}")));
    // The root's node replicates the graph and the store.
    let mut cmd = starling();
    cmd.arg("run").arg("--data-dir").arg(dir("root")).args([
        "--replicate",
        &graph,
        "--replicate",
        &address,
    ]);
    let mut node = Proc(
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let node_addr = first_line(&mut node.0);
    let put = |who: &str, id: &str| {
        docs(
            &dir(who),
            &[
                "put",
                &address,
                "--bootstrap",
                &node_addr,
                "--json",
                &format!("{{\"id\":\"{id}\",\"by\":\"{who}\"}}"),
            ],
            "",
        )
    };
    assert_eq!(ok(&put("laptop", "n1")), "\"n1\"\n");
    let err = failed(&put("stranger", "s1"));
    assert!(err.contains("refuses"), "{err}");
    // Anyone can check, from the graph's replicators.
    let remote_check = |who: &str| {
        trust(
            who,
            &[
                "check",
                &laptop,
                "--graph",
                &graph,
                "--bootstrap",
                &node_addr,
            ],
        )
    };
    assert!(ok(&remote_check("checker")).contains("trusted"));
    // The root revokes the laptop (its key, another directory: the node holds "root").
    let revoke = starling()
        .args([
            "trust",
            "revoke",
            &laptop,
            "--graph",
            &graph,
            "--bootstrap",
            &node_addr,
        ])
        .arg("--key")
        .arg(dir("root").join("key"))
        .arg("--data-dir")
        .arg(dir("root2"))
        .output()
        .unwrap();
    assert!(ok(&revoke).contains("revoked"));
    let after = remote_check("checker2");
    assert_eq!(after.status.code(), Some(1), "{after:?}");
    let err = failed(&put("laptop", "n2"));
    assert!(err.contains("refuses"), "{err}");
    let count = docs(
        &dir("reader"),
        &[
            "query",
            &address,
            "--bootstrap",
            &node_addr,
            "--remote",
            "--count",
        ],
        "",
    );
    assert_eq!(ok(&count).trim(), "1");
}
