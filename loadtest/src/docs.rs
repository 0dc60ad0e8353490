//! `starling-loadtest docs`: the document store against raw fjall and Peerbit's figures, in one
//! run on 127.0.0.1 — local puts, replication to another process, fan-out to 8 replicator
//! processes, queries on 100,000 documents, a fresh replicator's sync, and the bytes two
//! replicas that differ in 100 of 100,000 entries exchange. A table, then a last-line JSON.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::Args;
use fjall::{Database, KeyspaceCreateOptions, KvSeparationOptions};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use starling_engine::documents::keys::IndexValue;
use starling_engine::documents::{
    DocId, Documents, DocumentsOptions, Filter, IndexSpec, Postcard, Query, Replica,
    ReplicaOptions, Role, Sort,
};
use starling_engine::program::{ProgramAddress, ProgramDefinition};
use starling_engine::{Peer, PeerConfig};
use starling_net::overlay::SplitMix64;
use starling_net::{KeyType, Keypair};
use starling_store::{Durability, Store, StoreConfig};

#[derive(Debug, Args)]
pub(crate) struct DocsArgs {
    /// Documents in the query, sync and reconcile store.
    #[arg(long, default_value_t = 100_000)]
    docs: usize,
    /// Documents written 1 → 1 to another process.
    #[arg(long, default_value_t = 100_000)]
    replicated: usize,
    /// 64 KiB documents written 1 → 8 (1,000: 524 MB delivered, a few seconds — shorter runs
    /// measure mostly the start).
    #[arg(long, default_value_t = 1000)]
    fanout_docs: usize,
    /// Replicator processes for the fan-out.
    #[arg(long, default_value_t = 8)]
    fanout_replicators: usize,
    /// Queries of each kind timed.
    #[arg(long, default_value_t = 1000)]
    queries: usize,
    /// Seconds per local put measurement.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Run one part only: put, replicated, fanout or store (queries, sync, reconcile).
    #[arg(long)]
    only: Option<String>,
}

/// The documents: three indexed fields and a body to make them `size` bytes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Doc {
    category: i64,
    score: i64,
    title: String,
    body: String,
}

pub(crate) fn doc(i: u64, size: usize) -> Doc {
    let mut rng = SplitMix64::new(i);
    // Hex text: incompressible enough, and one byte per character in postcard.
    let mut body = String::with_capacity(size);
    while body.len() + 16 <= size.saturating_sub(48) {
        body.push_str(&format!("{:016x}", rng.next_u64()));
    }
    Doc {
        category: (rng.next_u64() % 1000) as i64,
        score: (rng.next_u64() % 1_000_000) as i64,
        title: format!("document {i:08}"),
        body,
    }
}

pub(crate) fn index() -> IndexSpec<Doc> {
    IndexSpec::new()
        .field("category", |d: &Doc| IndexValue::Int(d.category))
        .field("score", |d: &Doc| IndexValue::Int(d.score))
        .field("title", |d: &Doc| IndexValue::Str(d.title.clone()))
}

fn program() -> ProgramAddress {
    ProgramDefinition::new("documents/v1", "loadtest", Bytes::new())
        .expect("a valid definition")
        .address()
}

const BATCH: usize = 256;

pub(crate) fn store_config() -> StoreConfig {
    StoreConfig {
        durability: Durability::Buffered,
        ..StoreConfig::default()
    }
}

/// Local puts of 1 KiB documents, `BATCH` per call (one signature, one write batch).
fn local_puts(dir: &std::path::Path, budget: Duration) -> Result<(f64, usize)> {
    let store = Store::open(dir, store_config())?;
    let mut docs: Documents<Doc> = Documents::open(
        program(),
        store,
        Keypair::generate(KeyType::Ed25519),
        Postcard,
        index(),
        DocumentsOptions::default(),
    )?;
    let pool: Vec<Doc> = (0..1024).map(|i| doc(i, 1024)).collect();
    let entry_len = postcard::to_stdvec(&pool[0]).map_or(0, |v| v.len());
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        let batch: Vec<(DocId, &Doc)> = (0..BATCH as u64)
            .map(|i| (DocId::Int((n + i) as i64), &pool[((n + i) % 1024) as usize]))
            .collect();
        docs.put_many(batch)?;
        n += BATCH as u64;
    }
    Ok((n as f64 / start.elapsed().as_secs_f64(), entry_len))
}

/// Raw fjall: the same number of values of the same size per write batch.
fn raw_fjall(dir: &std::path::Path, size: usize, budget: Duration) -> Result<f64> {
    let db = Database::builder(dir).open()?;
    let ks = db.keyspace("values", || {
        KeyspaceCreateOptions::default().with_kv_separation(Some(
            KvSeparationOptions::default().separation_threshold(4096),
        ))
    })?;
    let value = Bytes::from(vec![7u8; size]);
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        let mut batch = db.batch();
        for _ in 0..BATCH {
            let key = blake3::hash(&n.to_le_bytes());
            batch.insert(&ks, key.as_bytes().to_vec(), value.clone());
            n += 1;
        }
        batch.commit()?;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

async fn peer(dir: Option<&std::path::Path>, bootstrap: Vec<std::net::SocketAddr>) -> Result<Peer> {
    Ok(Peer::start(
        Keypair::generate(KeyType::Ed25519),
        PeerConfig {
            bootstrap,
            data_dir: dir.map(|d| d.to_path_buf()),
            store: store_config(),
            ..PeerConfig::default()
        },
    )
    .await?)
}

fn open(peer: &Peer, role: Role) -> Result<Replica<Doc>> {
    Ok(peer.open_documents(
        program(),
        Postcard,
        index(),
        DocumentsOptions::default(),
        ReplicaOptions {
            role,
            // Only the exchanges on meeting: the counted bytes are one reconciliation's.
            reconcile_every: Duration::from_secs(3600),
            ..ReplicaOptions::default()
        },
    )?)
}

/// Puts `n` documents of `size` bytes in batches, keeping at most `window` of them not yet
/// held by `holders` replicators; the time until all are held.
async fn write(replica: &Replica<Doc>, n: usize, size: usize, holders: usize) -> Result<f64> {
    let pool: Vec<Doc> = (0..256).map(|i| doc(i, size)).collect();
    let window = (32 << 20) / size.max(1024);
    let start = Instant::now();
    let mut all = Vec::with_capacity(n);
    let mut i = 0;
    while i < n {
        while replica.unacknowledged(holders) > window {
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        let k = BATCH.min(n - i).min(window / 2).max(1);
        let batch: Vec<(DocId, &Doc)> = (i..i + k)
            .map(|j| (DocId::Int(j as i64), &pool[j % 256]))
            .collect();
        all.extend(replica.put_many(batch)?);
        i += k;
    }
    if !replica
        .wait_for_replicas(
            &all[all.len().saturating_sub(ACK_TAIL)..],
            holders,
            Duration::from_secs(120),
        )
        .await
    {
        bail!("the replicators did not acknowledge every write in 120 s");
    }
    Ok(start.elapsed().as_secs_f64())
}

/// The writes whose acknowledgement ends a measurement (acknowledgements come in order).
const ACK_TAIL: usize = 1024;

/// A replicator process: `starling-loadtest docs-replica --expect N`.
struct ChildProc(Child);

impl Drop for ChildProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_replica(
    expect: usize,
) -> Result<(
    ChildProc,
    std::net::SocketAddr,
    BufReader<std::process::ChildStdout>,
)> {
    let mut child = ChildProc(
        Command::new(std::env::current_exe()?)
            .args(["docs-replica", "--expect", &expect.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting a replicator process")?,
    );
    let mut out = BufReader::new(child.0.stdout.take().context("no stdout")?);
    let mut line = String::new();
    out.read_line(&mut line)?;
    let addr = line
        .trim()
        .parse()
        .with_context(|| format!("replicator said {line:?}"))?;
    Ok((child, addr, out))
}

/// Waits for a replicator process's "done" line.
fn wait_done(out: &mut BufReader<std::process::ChildStdout>) -> Result<()> {
    let mut line = String::new();
    out.read_line(&mut line)?;
    if line.trim() != "done" {
        bail!("replicator said {line:?}");
    }
    Ok(())
}

#[derive(Debug, Args)]
pub(crate) struct ReplicaArgs {
    /// Documents to wait for.
    #[arg(long)]
    expect: usize,
}

/// One replicator process: prints its address, then "done" once its change stream has
/// reported `expect` documents, and serves until killed.
pub(crate) async fn replica(args: ReplicaArgs) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let peer = peer(Some(dir.path()), Vec::new()).await?;
    let replica = open(&peer, Role::Replicator)?;
    let mut changes = replica.changes();
    println!("{}", peer.local_addr());
    let mut seen = 0usize;
    while seen < args.expect {
        match changes.recv().await {
            Ok(c) => seen += c.added.len(),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => seen += n as usize,
            Err(_) => break,
        }
    }
    println!("done");
    std::future::pending::<()>().await;
    Ok(())
}

fn p99_ms(h: &Histogram<u64>) -> f64 {
    h.value_at_quantile(0.99) as f64 / 1000.0
}

pub(crate) async fn run(args: DocsArgs) -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let budget = Duration::from_secs_f64(args.seconds);
    let want = |part: &str| args.only.as_deref().is_none_or(|o| o == part);
    let mut fields: Vec<String> = Vec::new();

    // Local puts against raw fjall.
    if want("put") {
        let (put_per_s, entry_len) =
            tokio::task::block_in_place(|| local_puts(&tmp.path().join("put"), budget))?;
        let raw_per_s = tokio::task::block_in_place(|| {
            raw_fjall(&tmp.path().join("raw"), entry_len + 200, budget)
        })?;
        eprintln!(
            "local puts (1 KiB, 3 indexed fields): {put_per_s:.0}/s; raw fjall: {raw_per_s:.0}/s"
        );
        fields.push(format!(
            "\"put_per_s_1k\":{put_per_s:.0},\"raw_fjall_per_s_1k\":{raw_per_s:.0},\"put_over_raw\":{:.3}",
            put_per_s / raw_per_s
        ));
    }
    if want("replicated") {
        fields.push(replicated(&args).await?);
    }
    if want("fanout") {
        fields.push(fanout(&args).await?);
    }
    if want("store") {
        fields.push(store(&args, tmp.path()).await?);
    }
    println!("{{{}}}", fields.join(","));
    Ok(())
}

/// 1 → 1 replication to another process.
async fn replicated(args: &DocsArgs) -> Result<String> {
    let (_child, addr, mut out) = spawn_replica(args.replicated)?;
    let writer = peer(None, vec![addr]).await?;
    let w = open(&writer, Role::Observer)?;
    if !w.wait_for_replicators(1, Duration::from_secs(10)).await {
        bail!("the replicator process was not found");
    }
    let start = Instant::now();
    write(&w, args.replicated, 1024, 1).await?;
    tokio::task::block_in_place(|| wait_done(&mut out))?;
    let replicated_per_s = args.replicated as f64 / start.elapsed().as_secs_f64();
    eprintln!("replicated 1 → 1 (another process): {replicated_per_s:.0} documents/s");
    drop(w);
    writer.close().await;
    Ok(format!("\"replicated_per_s_1k\":{replicated_per_s:.0}"))
}

/// 1 → N fan-out of 64 KiB documents to replicator processes.
async fn fanout(args: &DocsArgs) -> Result<String> {
    let mut children = Vec::new();
    for _ in 0..args.fanout_replicators {
        children.push(spawn_replica(args.fanout_docs)?);
    }
    let writer = peer(None, children.iter().map(|(_, a, _)| *a).collect()).await?;
    let w = open(&writer, Role::Observer)?;
    if !w
        .wait_for_replicators(args.fanout_replicators, Duration::from_secs(10))
        .await
    {
        bail!("not every replicator process was found");
    }
    let start = Instant::now();
    write(&w, args.fanout_docs, 64 << 10, args.fanout_replicators).await?;
    for (_, _, out) in &mut children {
        tokio::task::block_in_place(|| wait_done(out))?;
    }
    let secs = start.elapsed().as_secs_f64();
    let fanout_mb_s = (args.fanout_docs * args.fanout_replicators * (64 << 10)) as f64 / 1e6 / secs;
    eprintln!(
        "fan-out 1 → {} (64 KiB documents): {fanout_mb_s:.1} MB/s aggregate",
        args.fanout_replicators
    );
    drop(w);
    writer.close().await;
    Ok(format!("\"fanout_mb_s_64k\":{fanout_mb_s:.1}"))
}

/// Queries on `docs` documents, a fresh replicator's sync of them, and two replicas that
/// differ in 100 entries reconciling.
async fn store(args: &DocsArgs, tmp: &std::path::Path) -> Result<String> {
    let a_dir = tmp.join("a");
    let a = peer(Some(&a_dir), Vec::new()).await?;
    let ra = open(&a, Role::Replicator)?;
    let load = Instant::now();
    let pool: Vec<Doc> = (0..args.docs as u64).map(|i| doc(i, 1024)).collect();
    for (c, chunk) in pool.chunks(BATCH).enumerate() {
        ra.put_many(
            chunk
                .iter()
                .enumerate()
                .map(|(i, d)| (DocId::Int((c * BATCH + i) as i64), d)),
        )?;
    }
    eprintln!(
        "loaded {} documents in {:.1} s",
        args.docs,
        load.elapsed().as_secs_f64()
    );
    let mut rng = SplitMix64::new(99);
    let mut eq = Histogram::<u64>::new(3)?;
    let mut range = Histogram::<u64>::new(3)?;
    let mut eq_found = 0;
    let mut range_found = 0;
    for _ in 0..args.queries {
        let q = Query {
            filter: Filter::Eq(
                "category".into(),
                IndexValue::Int((rng.next_u64() % 1000) as i64),
            ),
            ..Query::default()
        };
        let t = Instant::now();
        eq_found += ra.query(&q)?.len();
        eq.record(t.elapsed().as_micros() as u64)?;
        let from = (rng.next_u64() % 900_000) as i64;
        let q = Query {
            filter: Filter::And(vec![
                Filter::Ge("score".into(), IndexValue::Int(from)),
                Filter::Lt("score".into(), IndexValue::Int(from + 100_000)),
            ]),
            sort: vec![Sort {
                field: "score".into(),
                descending: true,
            }],
            limit: Some(10),
        };
        let t = Instant::now();
        range_found += ra.query(&q)?.len();
        range.record(t.elapsed().as_micros() as u64)?;
    }
    let (eq_p99, range_p99) = (p99_ms(&eq), p99_ms(&range));
    eprintln!(
        "queries on {} documents: eq p99 {eq_p99:.2} ms ({:.0} found each), range+sort+limit 10 p99 {range_p99:.2} ms ({:.0} found)",
        args.docs,
        eq_found as f64 / args.queries as f64,
        range_found as f64 / args.queries as f64
    );

    // 5. A fresh replicator syncs everything.
    let b_dir = tmp.join("b");
    let b = peer(Some(&b_dir), vec![a.local_addr()]).await?;
    let start = Instant::now();
    let rb = open(&b, Role::Replicator)?;
    while rb.count()? < args.docs as u64 {
        if start.elapsed() > Duration::from_secs(300) {
            bail!(
                "the fresh replicator did not sync in 300 s ({} documents)",
                rb.count()?
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let sync_s = start.elapsed().as_secs_f64();
    eprintln!(
        "fresh replicator synced {} documents in {sync_s:.2} s",
        args.docs
    );

    // 6. Two replicas that differ in 100 entries: 50 written on each side while apart.
    drop(rb);
    b.close().await;
    drop(b);
    let extra: Vec<Doc> = (0..50).map(|i| doc(1_000_000 + i, 1024)).collect();
    ra.put_many(
        extra
            .iter()
            .enumerate()
            .map(|(i, d)| (DocId::Int(2_000_000 + i as i64), d)),
    )?;
    let b = peer(Some(&b_dir), Vec::new()).await?;
    let rb = open(&b, Role::Replicator)?;
    rb.put_many(
        extra
            .iter()
            .enumerate()
            .map(|(i, d)| (DocId::Int(3_000_000 + i as i64), d)),
    )?;
    let before = ra.stats().reconcile_bytes + rb.stats().reconcile_bytes;
    let start = Instant::now();
    b.connect(a.local_addr()).await?;
    let items = |r: &Replica<Doc>| r.with_documents(|d| d.items());
    loop {
        if items(&ra)? == items(&rb)? {
            break;
        }
        if start.elapsed() > Duration::from_secs(60) {
            bail!("the two replicas did not converge in 60 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reconcile_s = start.elapsed().as_secs_f64();
    let reconcile_bytes = ra.stats().reconcile_bytes + rb.stats().reconcile_bytes - before;
    let naive_bytes = (args.docs + 100) * 32;
    eprintln!(
        "two replicas differing in 100 of {}: equal after {reconcile_s:.2} s, {reconcile_bytes} reconciliation bytes (sending every hash: {naive_bytes})",
        args.docs
    );
    drop((ra, rb));
    a.close().await;
    b.close().await;

    Ok(format!(
        "\"query_p99_ms_eq\":{eq_p99:.3},\"query_p99_ms_range_sort_limit10\":{range_p99:.3},\"sync_s_100k\":{sync_s:.2},\"reconcile_bytes_100_of_100k\":{reconcile_bytes},\"naive_reconcile_bytes\":{naive_bytes},\"docs\":{}",
        args.docs
    ))
}
