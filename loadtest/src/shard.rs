//! `starling-loadtest shard`: a sharded document store over real QUIC on 127.0.0.1 — 8
//! replicators (even fixed ranges, `replicas min 2`) and a writer, each a `Peer` with its own
//! fjall store in this process; 100,000 documents of 1 KiB; then 2 replicators killed, then 2
//! new ones joining (choosing their own ranges). Measured: documents lost, seconds until every
//! document has two live holders again, balance, stored over ideal once pruning settles, bytes
//! moved, searches across shards against a full-replica reference (the baseline: one local
//! store holding everything, asked the same queries), search p99, peak RSS (the whole process:
//! ten peers). A table, then a last-line JSON.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use bytes::Bytes;
use clap::Args;
use hdrhistogram::Histogram;
use starling_engine::documents::keys::IndexValue;
use starling_engine::documents::{
    DocId, Documents, DocumentsOptions, Filter, Postcard, Query, Replica, ReplicaOptions, Role,
    Sort,
};
use starling_engine::program::{ProgramAddress, ProgramDefinition};
use starling_engine::shard::{Range, Span};
use starling_engine::{EntryHash, Peer, PeerConfig};
use starling_net::{KeyType, Keypair};
use starling_store::Store;

use crate::docs::{Doc, doc, index, store_config};
use crate::util::{peak_rss_mb, rss_mb};

/// Arguments of `shard`.
#[derive(Debug, Args)]
pub(crate) struct ShardArgs {
    /// Replicators at the start.
    #[arg(long, default_value_t = 8)]
    replicators: usize,
    /// Documents written (1 KiB each).
    #[arg(long, default_value_t = 100_000)]
    docs: usize,
    /// Replicators killed, then as many joining.
    #[arg(long, default_value_t = 2)]
    churn: usize,
    /// Searches timed.
    #[arg(long, default_value_t = 200)]
    queries: usize,
    /// Instead: the memory of one replicator holding this many entries (100-byte documents,
    /// written locally) while a newcomer takes a thousandth of the ring from it — digests,
    /// reconciliation parts, confirmations and pruning over a large store.
    #[arg(long)]
    memory: Option<usize>,
}

const MIN: u8 = 2;
const DOC_BYTES: usize = 1024;

fn program() -> ProgramAddress {
    ProgramDefinition::new("documents/v1", "shard loadtest", Bytes::new())
        .expect("a valid definition")
        .address()
}

struct Node {
    peer: Peer,
    replica: Replica<Doc>,
    _dir: tempfile::TempDir,
}

async fn node(
    bootstrap: Vec<std::net::SocketAddr>,
    role: Role,
    ranges: Option<Vec<Range>>,
) -> Result<Node> {
    node_with(bootstrap, role, ranges, MIN).await
}

async fn node_with(
    bootstrap: Vec<std::net::SocketAddr>,
    role: Role,
    ranges: Option<Vec<Range>>,
    replicas: u8,
) -> Result<Node> {
    let dir = tempfile::tempdir()?;
    let peer = Peer::start(
        Keypair::generate(KeyType::Ed25519),
        PeerConfig {
            bootstrap,
            data_dir: Some(dir.path().to_path_buf()),
            store: store_config(),
            ..PeerConfig::default()
        },
    )
    .await?;
    let replica = peer.open_documents(
        program(),
        Postcard,
        index(),
        DocumentsOptions {
            replicas: Some(replicas),
            ..DocumentsOptions::default()
        },
        ReplicaOptions {
            role,
            ranges,
            ..ReplicaOptions::default()
        },
    )?;
    Ok(Node {
        peer,
        replica,
        _dir: dir,
    })
}

/// How many of `nodes` hold each entry (entries by hash, from their point rows).
fn copies(nodes: &[&Node]) -> Result<HashMap<EntryHash, u8>> {
    let mut out: HashMap<EntryHash, u8> = HashMap::new();
    for n in nodes {
        let items = n
            .replica
            .with_documents(|d| d.held_items(Span::ALL, usize::MAX))?;
        for it in &items {
            *out.entry(starling_engine::documents::held::item_hash(it))
                .or_default() += 1;
        }
    }
    Ok(out)
}

fn held_counts(nodes: &[&Node]) -> Result<Vec<usize>> {
    nodes
        .iter()
        .map(|n| {
            Ok(n.replica
                .with_documents(|d| d.held_items(Span::ALL, usize::MAX))?
                .len())
        })
        .collect()
}

fn balance(counts: &[usize]) -> f64 {
    let mean = counts.iter().sum::<usize>() as f64 / counts.len().max(1) as f64;
    let max = counts.iter().copied().max().unwrap_or(0) as f64;
    if mean > 0.0 { max / mean } else { 0.0 }
}

fn served_bytes(nodes: &[&Node]) -> u64 {
    nodes.iter().map(|n| n.replica.stats().served_bytes).sum()
}

/// Queries of the kinds users run: equality sorted with a limit, a range, a sorted page.
fn queries() -> Vec<Query> {
    let mut out = Vec::new();
    for c in [3i64, 250, 777] {
        out.push(Query {
            filter: Filter::Eq("category".into(), IndexValue::Int(c)),
            sort: vec![Sort {
                field: "score".into(),
                descending: true,
            }],
            limit: Some(10),
        });
    }
    out.push(Query {
        filter: Filter::And(vec![
            Filter::Ge("score".into(), IndexValue::Int(500_000)),
            Filter::Lt("score".into(), IndexValue::Int(501_000)),
        ]),
        ..Query::default()
    });
    out.push(Query {
        filter: Filter::All,
        sort: vec![Sort {
            field: "score".into(),
            descending: false,
        }],
        limit: Some(20),
    });
    out
}

pub(crate) async fn run(args: ShardArgs) -> Result<()> {
    if let Some(n) = args.memory {
        return memory(n).await;
    }
    anyhow::ensure!(
        args.replicators > args.churn + 1,
        "more replicators than --churn + 1"
    );
    let n = args.replicators as u64;
    let width = u64::MAX / n;
    println!(
        "shard: {} replicators (replicas min {MIN}), {} documents of {DOC_BYTES} B, {} killed \
         then {} joining",
        args.replicators, args.docs, args.churn, args.churn
    );
    let first = node(
        Vec::new(),
        Role::Replicator,
        Some(vec![Range { offset: 0, width }]),
    )
    .await?;
    let boot = vec![first.peer.local_addr()];
    let mut replicators = vec![first];
    for i in 1..n {
        replicators.push(
            node(
                boot.clone(),
                Role::Replicator,
                Some(vec![Range {
                    offset: i * width,
                    width,
                }]),
            )
            .await?,
        );
    }
    let writer = node(boot.clone(), Role::Observer, None).await?;
    for r in &replicators {
        if !r.replica.wait_ready(Duration::from_secs(30)).await {
            bail!("a replicator was not ready in 30 s");
        }
    }
    if !writer
        .replica
        .wait_for_coverage(Duration::from_secs(30))
        .await
    {
        bail!("the writer did not learn every range in 30 s");
    }

    // The full-replica reference: one local store with every document.
    let ref_dir = tempfile::tempdir()?;
    let mut reference: Documents<Doc> = Documents::open(
        program(),
        Store::open(ref_dir.path(), store_config())?,
        Keypair::generate(KeyType::Ed25519),
        Postcard,
        index(),
        DocumentsOptions::default(),
    )?;

    // Load.
    let pool: Vec<Doc> = (0..args.docs as u64).map(|i| doc(i, DOC_BYTES)).collect();
    let window = (32 << 20) / DOC_BYTES;
    let start = Instant::now();
    let mut written: Vec<EntryHash> = Vec::with_capacity(args.docs);
    for chunk in (0..args.docs).collect::<Vec<_>>().chunks(256) {
        while writer.replica.unacknowledged(usize::from(MIN)) > window {
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        let batch: Vec<(DocId, &Doc)> = chunk
            .iter()
            .map(|&i| (DocId::Int(i as i64), &pool[i]))
            .collect();
        written.extend(writer.replica.put_many(batch.iter().cloned())?);
        reference.put_many(batch)?;
    }
    if !writer
        .replica
        .wait_for_replicas(
            &written[written.len().saturating_sub(1024)..],
            usize::from(MIN),
            Duration::from_secs(120),
        )
        .await
    {
        bail!("the keepers did not acknowledge every write in 120 s");
    }
    let load_s = start.elapsed().as_secs_f64();
    let all: Vec<&Node> = replicators.iter().collect();
    let settle = Instant::now();
    loop {
        let c = copies(&all)?;
        if c.len() == written.len() && c.values().all(|&k| k >= MIN) {
            break;
        }
        if settle.elapsed() > Duration::from_secs(60) {
            bail!("writes not at {MIN} holders 60 s after the load");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let loaded = held_counts(&all)?;
    let loaded_balance = balance(&loaded);
    println!(
        "  load: {} docs in {load_s:.1} s ({:.0}/s) · held per replicator {loaded:?} · \
         balance max/mean {loaded_balance:.3}",
        args.docs,
        args.docs as f64 / load_s
    );

    // Kill: replicators 1.. (neighbours: with two replicas half a ring apart, neighbours
    // share no documents, so none loses both holders at once).
    let served_before = served_bytes(&all);
    let killed: Vec<Node> = replicators.drain(1..1 + args.churn).collect();
    let kill_at = Instant::now();
    for k in &killed {
        k.peer.close().await;
    }
    drop(killed);
    let live: Vec<&Node> = replicators.iter().collect();
    let under_replicated_after_s = loop {
        // Cheap first: too few documents held in all cannot be enough copies.
        let held: u64 = live.iter().map(|n| n.replica.count().unwrap_or(0)).sum();
        let needed = written.len() as u64 * u64::from(MIN);
        let short = if held < needed {
            needed - held
        } else {
            let c = copies(&live)?;
            written
                .iter()
                .filter(|h| c.get(h).copied().unwrap_or(0) < MIN)
                .count() as u64
        };
        if std::env::var_os("SHARD_TRACE").is_some() {
            let served: Vec<u64> = live
                .iter()
                .map(|n| n.replica.stats().served_bytes >> 20)
                .collect();
            eprintln!(
                "  {:.1} s: ~{short} copies short · served MiB {served:?}",
                kill_at.elapsed().as_secs_f64()
            );
        }
        if short == 0 {
            break kill_at.elapsed().as_secs_f64();
        }
        if kill_at.elapsed() > Duration::from_secs(120) {
            bail!("documents still under-replicated 120 s after the kill");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "  kill {}: every document at {MIN} live holders after {under_replicated_after_s:.1} s",
        args.churn
    );

    // Join, one after the other (each picks its range from what it hears).
    for _ in 0..args.churn {
        let joiner = node(boot.clone(), Role::Replicator, None).await?;
        if !joiner.replica.wait_ready(Duration::from_secs(60)).await {
            bail!("a joining replicator was not ready in 60 s");
        }
        replicators.push(joiner);
    }
    let live: Vec<&Node> = replicators.iter().collect();
    let join_at = Instant::now();
    let (stored, lost) = loop {
        let c = copies(&live)?;
        let lost = written.iter().filter(|h| !c.contains_key(h)).count();
        let stored: usize = c.values().map(|&k| usize::from(k)).sum();
        let settled = written
            .iter()
            .all(|h| c.get(h).copied().unwrap_or(0) >= MIN)
            && stored <= written.len() * usize::from(MIN);
        if settled || join_at.elapsed() > Duration::from_secs(60) {
            break (stored, lost);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let counts = held_counts(&live)?;
    let balance_max_over_mean = balance(&counts);
    let stored_over_ideal = stored as f64 / (written.len() as f64 * f64::from(MIN));
    let rebalance_mb = (served_bytes(&live).saturating_sub(served_before)) as f64 / 1e6;
    println!(
        "  join {}: settled after {:.1} s · held per replicator {counts:?} · balance \
         {balance_max_over_mean:.3} · stored/ideal {stored_over_ideal:.3} · moved \
         {rebalance_mb:.1} MB · lost {lost}",
        args.churn,
        join_at.elapsed().as_secs_f64()
    );

    // Searches across shards against the reference.
    let wait = Duration::from_secs(10);
    let mut exact = true;
    let mut hist = Histogram::<u64>::new(3)?;
    let kinds = queries();
    for i in 0..args.queries {
        let q = &kinds[i % kinds.len()];
        let t = Instant::now();
        let got = writer.replica.search(q, wait).await?;
        hist.record(t.elapsed().as_micros() as u64)?;
        let want = reference.query(q)?;
        if !got.unanswered.is_empty() || got.documents != want {
            exact = false;
        }
    }
    let query_p99_ms = hist.value_at_quantile(0.99) as f64 / 1000.0;
    let peak = peak_rss_mb();
    println!(
        "  search: exact {exact} · p99 {query_p99_ms:.2} ms over {} · peak RSS {peak:.0} MB",
        args.queries
    );
    println!(
        "{{\"scenario\":\"shard\",\"replicators\":{},\"docs\":{},\"lost\":{lost},\
         \"under_replicated_after_s\":{under_replicated_after_s:.2},\
         \"balance_max_over_mean\":{balance_max_over_mean:.3},\
         \"stored_over_ideal\":{stored_over_ideal:.3},\"rebalance_mb\":{rebalance_mb:.1},\
         \"query_exact\":{exact},\"query_p99_ms\":{query_p99_ms:.2},\"peak_rss_mb\":{peak:.0},\
         \"load_docs_per_s\":{:.0},\"loaded_balance_max_over_mean\":{loaded_balance:.3}}}",
        args.replicators,
        args.docs,
        args.docs as f64 / load_s
    );
    for r in &replicators {
        r.peer.close().await;
    }
    writer.peer.close().await;
    Ok(())
}

/// `shard --memory N` (see [`ShardArgs::memory`]).
async fn memory(n: usize) -> Result<()> {
    println!(
        "shard --memory: one replicator with {n} entries; a newcomer takes 1/1000 of the ring"
    );
    // One replica per document: the newcomer takes its thousandth from the holder.
    let holder = node_with(Vec::new(), Role::Replicator, Some(vec![Range::FULL]), 1).await?;
    let start = Instant::now();
    let pool: Vec<Doc> = (0..256u64).map(|i| doc(i, 100)).collect();
    let mut rss_at = Vec::new();
    let step = (n / 10).max(1);
    let mut i = 0usize;
    while i < n {
        let k = 256.min(n - i);
        let batch: Vec<(DocId, &Doc)> = (i..i + k)
            .map(|j| (DocId::Int(j as i64), &pool[j % 256]))
            .collect();
        holder.replica.put_many(batch)?;
        i += k;
        if i % step < k {
            rss_at.push((i, rss_mb()));
            println!(
                "  {i} entries written ({:.0}/s) · RSS {:.0} MB",
                i as f64 / start.elapsed().as_secs_f64(),
                rss_mb()
            );
        }
    }
    let loaded_rss = rss_mb();
    let width = u64::MAX / 1000;
    let newcomer = node_with(
        vec![holder.peer.local_addr()],
        Role::Replicator,
        Some(vec![Range {
            offset: width * 500,
            width,
        }]),
        1,
    )
    .await?;
    let t = Instant::now();
    let mut peak_during = loaded_rss;
    let ready = loop {
        peak_during = peak_during.max(rss_mb());
        if newcomer.replica.shard_status().is_some_and(|s| s.ready) {
            break true;
        }
        if t.elapsed() > Duration::from_secs(600) {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let ready_s = t.elapsed().as_secs_f64();
    // The holder prunes what the newcomer confirmed.
    let moved = newcomer.replica.count()?;
    let pruned = loop {
        peak_during = peak_during.max(rss_mb());
        let pruned = holder.replica.stats().pruned;
        if pruned >= moved || t.elapsed() > Duration::from_secs(600) {
            break pruned;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let peak = peak_rss_mb();
    println!(
        "  newcomer ready: {ready} after {ready_s:.1} s with {moved} entries · holder pruned \
         {pruned} · RSS loaded {loaded_rss:.0} MB, peak during the move {peak_during:.0} MB, \
         peak overall {peak:.0} MB (two peers, one process)"
    );
    let growth: Vec<String> = rss_at
        .iter()
        .map(|(k, r)| format!("[{k},{r:.0}]"))
        .collect();
    println!(
        "{{\"scenario\":\"shard-memory\",\"entries\":{n},\"rss_mb_loaded\":{loaded_rss:.0},\
         \"rss_mb_peak_during_move\":{peak_during:.0},\"peak_rss_mb\":{peak:.0},\
         \"moved\":{moved},\"pruned\":{pruned},\"ready_s\":{ready_s:.1},\
         \"rss_mb_by_entries\":[{}]}}",
        growth.join(",")
    );
    newcomer.peer.close().await;
    holder.peer.close().await;
    Ok(())
}
