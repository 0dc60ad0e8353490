//! `starling docs`: JSON document stores from the shell — create one, put, get, delete,
//! query and watch documents in a local replica (`--data-dir`), and with `--bootstrap` reach
//! the store's replicators (`starling run --replicate ADDRESS`).

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::Value;
use starling_engine::documents::json::{
    Json, id_from_text, id_to_json, json_id, parse_document, parse_filter, parse_sort,
};
use starling_engine::documents::{
    DocId, DocumentError, DocumentsParams, Filter, IndexVisibility, Query, Replica, ReplicaOptions,
    Replicas, Role, Writers,
};
use starling_engine::program::ProgramAddress;
use starling_engine::{Peer, PeerConfig};
use starling_net::identity::{KeyType, Keypair, load_key_file, save_key_file};
use starling_net::transport::{Multiaddr, parse_quic_multiaddr};

/// What every `docs` command shares: the local replica and the peers to reach.
#[derive(Debug, Args)]
pub(crate) struct ReplicaArgs {
    /// The local replica: its store and its key (`DIR/key`, made on first use).
    #[arg(long, default_value = "starling-data")]
    pub(crate) data_dir: PathBuf,
    /// Sign as this key instead of the replica's own.
    #[arg(long)]
    pub(crate) key: Option<PathBuf>,
    /// Peers to reach the store's replicators through (repeatable), as `starling run` prints
    /// them.
    #[arg(long)]
    pub(crate) bootstrap: Vec<Multiaddr>,
    /// With --bootstrap: wait until this many replicators (other than this one) hold what
    /// `put`/`del` wrote.
    #[arg(long, default_value_t = 1)]
    pub(crate) replicas: usize,
    /// Seconds to wait for definitions, replicators and answers.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) timeout: f64,
}

#[derive(Debug, Args)]
pub(crate) struct DocsArgs {
    #[command(subcommand)]
    command: DocsCommand,
}

#[derive(Debug, Subcommand)]
enum DocsCommand {
    /// Create a store; prints its address.
    Create(CreateArgs),
    /// Put documents: JSON lines on stdin (or --json); prints one id per document.
    Put(PutArgs),
    /// Print a document as one JSON line (not found: exit 1).
    Get(GetArgs),
    /// Delete a document (not found: exit 1).
    Del(GetArgs),
    /// Print the documents a query selects, as JSON lines in its order.
    Query(QueryArgs),
    /// Print changes as JSON lines until Ctrl-C.
    Watch(WatchArgs),
}

/// `--writers`: `anyone`, `owner` (the creating key) or `trusted:ADDRESS` (keys the trust
/// graph at ADDRESS trusts, `starling trust create`).
#[derive(Clone, Debug)]
enum WritersArg {
    Anyone,
    Owner,
    Trusted(ProgramAddress),
}

impl std::str::FromStr for WritersArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "anyone" => Ok(WritersArg::Anyone),
            "owner" => Ok(WritersArg::Owner),
            other => match other.strip_prefix("trusted:") {
                Some(address) => address
                    .parse()
                    .map(WritersArg::Trusted)
                    .map_err(|e| format!("trusted:{address}: {e}")),
                None => Err("anyone, owner or trusted:ADDRESS".into()),
            },
        }
    }
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// The store's name (part of its definition, so of its address).
    name: String,
    /// The field holding each document's id (a string or an integer).
    #[arg(long, default_value = "id")]
    id_field: String,
    /// The first version of a document wins.
    #[arg(long)]
    immutable: bool,
    /// Who may write: anyone, owner (this key), or trusted:ADDRESS (the keys a trust graph
    /// trusts, at each write's clock).
    #[arg(long, default_value = "anyone")]
    writers: WritersArg,
    /// Shard the store: each document kept by this many replicators, placed on a ring
    /// (default: every replicator keeps everything).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..))]
    min_replicas: Option<u8>,
    #[command(flatten)]
    replica: ReplicaArgs,
}

#[derive(Debug, Args)]
struct PutArgs {
    /// The store's address.
    address: ProgramAddress,
    /// One document (else JSON lines on stdin).
    #[arg(long)]
    json: Option<String>,
    /// Encrypt each document to these PeerIds (and always to this key): only they read it;
    /// replicators store and serve it unread, and answer queries on its indexed values,
    /// which stay public unless --sealed-index.
    #[arg(long, num_args = 1.., value_name = "PEERID")]
    encrypt_to: Vec<String>,
    /// With --encrypt-to: seal the indexed values too, so only the receivers index and query
    /// the document.
    #[arg(long, requires = "encrypt_to")]
    sealed_index: bool,
    #[command(flatten)]
    replica: ReplicaArgs,
}

#[derive(Debug, Args)]
struct GetArgs {
    /// The store's address.
    address: ProgramAddress,
    /// The document's id (an integer if it reads as one).
    id: String,
    /// Ask a replicator (--bootstrap) rather than the local replica.
    #[arg(long)]
    remote: bool,
    #[command(flatten)]
    replica: ReplicaArgs,
}

#[derive(Debug, Args)]
struct QueryArgs {
    /// The store's address.
    address: ProgramAddress,
    /// Which documents: `FIELD OP VALUE` (= != < <= > >= ^= ~= ~i=), `FIELD is null`, with
    /// and / or / not and parentheses.
    #[arg(long = "where")]
    filter: Option<String>,
    /// Sort by FIELD[:desc] (repeatable; then by id).
    #[arg(long)]
    sort: Vec<String>,
    /// At most this many.
    #[arg(long)]
    limit: Option<usize>,
    /// Print only how many match.
    #[arg(long)]
    count: bool,
    /// Ask a replicator (--bootstrap) rather than the local replica.
    #[arg(long)]
    remote: bool,
    #[command(flatten)]
    replica: ReplicaArgs,
}

#[derive(Debug, Args)]
struct WatchArgs {
    /// The store's address.
    address: ProgramAddress,
    #[command(flatten)]
    replica: ReplicaArgs,
}

pub(crate) async fn docs(args: DocsArgs) -> Result<()> {
    match args.command {
        DocsCommand::Create(a) => create(a).await,
        DocsCommand::Put(a) => put(a).await,
        DocsCommand::Get(a) => get(a, false).await,
        DocsCommand::Del(a) => get(a, true).await,
        DocsCommand::Query(a) => query(a).await,
        DocsCommand::Watch(a) => watch(a).await,
    }
}

/// The replica's key: `--key`, or `DIR/key` (made on first use).
pub(crate) fn replica_key(args: &ReplicaArgs) -> Result<Keypair> {
    if let Some(path) = &args.key {
        return Ok(load_key_file(path)?);
    }
    let path = args.data_dir.join("key");
    if path.exists() {
        return load_key_file(&path).with_context(|| format!("reading {}", path.display()));
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let key = Keypair::generate(KeyType::Ed25519);
    save_key_file(&path, &key)?;
    Ok(key)
}

pub(crate) fn timeout(args: &ReplicaArgs) -> Duration {
    Duration::from_secs_f64(args.timeout.max(0.0))
}

/// A peer on the replica's data directory, connected to the bootstrap peers.
pub(crate) async fn start_peer(
    data_dir: &Path,
    key: Keypair,
    bootstrap: &[Multiaddr],
) -> Result<Peer> {
    let mut addrs = Vec::new();
    for addr in bootstrap {
        let (socket, _) = parse_quic_multiaddr(&addr.to_string())
            .with_context(|| format!("--bootstrap {addr}"))?;
        addrs.push(socket);
    }
    let peer = Peer::start(
        key,
        PeerConfig {
            bootstrap: addrs,
            data_dir: Some(data_dir.to_path_buf()),
            ..PeerConfig::default()
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("cannot start the peer: {e}"))?;
    Ok(peer)
}

/// Opens the store at `address` in the local replica (its definition from the replica or,
/// with --bootstrap, from the peers).
async fn open(args: &ReplicaArgs, address: ProgramAddress, role: Role) -> Result<(Peer, Store)> {
    let key = replica_key(args)?;
    let peer = start_peer(&args.data_dir, key, &args.bootstrap).await?;
    let options = ReplicaOptions {
        role,
        ..ReplicaOptions::default()
    };
    // Without peers to ask, only the replica's own definitions count: no waiting.
    let wait = if args.bootstrap.is_empty() {
        Duration::ZERO
    } else {
        timeout(args)
    };
    let opened = peer.open_json(address, options, wait).await;
    let (replica, params) = match opened {
        Ok(x) => x,
        Err(e) => {
            peer.close().await;
            return Err(match e {
                starling_engine::PeerError::DefinitionNotFound(_) if args.bootstrap.is_empty() => {
                    anyhow::anyhow!(
                        "unknown store {address}: not in {} (create it there, or give --bootstrap to fetch it)",
                        args.data_dir.display()
                    )
                }
                other => anyhow::anyhow!("cannot open {address}: {other}"),
            });
        }
    };
    // Writers a trust graph decides: know the graph before writing or reading.
    if let Ok(Some(graph)) = params.trust_graph()
        && !args.bootstrap.is_empty()
        && let Ok(trust) = peer.open_trust(graph, Duration::ZERO).await
        && !trust.wait_caught_up(timeout(args)).await
    {
        tracing::warn!(%graph, "the store's trust graph did not answer in time");
    }
    let id_field = params.json_id_field.unwrap_or_else(|| "id".into());
    Ok((peer, Store { replica, id_field }))
}

struct Store {
    replica: Replica<Value, Json>,
    id_field: String,
}

/// A document encrypted to other keys, said plainly.
fn unreadable(e: DocumentError) -> anyhow::Error {
    match e {
        DocumentError::Unreadable { why, .. } => {
            anyhow::anyhow!("the document is encrypted and this key cannot read it ({why})")
        }
        other => other.into(),
    }
}

/// Prints a line to stdout; a closed pipe (`| head`) is not an error.
fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}

/// With --bootstrap: waits until the replicators hold `hashes`.
async fn wait_for_replicas(
    args: &ReplicaArgs,
    store: &Store,
    hashes: &[starling_net::entry::EntryHash],
) -> Result<()> {
    if args.bootstrap.is_empty() || args.replicas == 0 {
        return Ok(());
    }
    let r = &store.replica;
    if !r.wait_for_replicators(args.replicas, timeout(args)).await {
        bail!(
            "only {} replicator(s) of this store reachable, --replicas {} asked for (written locally)",
            r.replicators().len(),
            args.replicas
        );
    }
    if !r
        .wait_for_replicas(hashes, args.replicas, timeout(args))
        .await
    {
        bail!(
            "not every write reached {} replicator(s) in time (written locally; a replicator will reconcile)",
            args.replicas
        );
    }
    Ok(())
}

async fn create(args: CreateArgs) -> Result<()> {
    let key = replica_key(&args.replica)?;
    let writers = match args.writers {
        WritersArg::Anyone => Writers::Anyone,
        WritersArg::Owner => Writers::Keys(vec![key.public().encode_protobuf()]),
        WritersArg::Trusted(graph) => Writers::Trusted(graph.0.to_vec()),
    };
    let params = DocumentsParams {
        immutable: args.immutable,
        writers,
        json_id_field: Some(args.id_field),
        replicas: args.min_replicas.map(|min| Replicas { min, max: min }),
    };
    let definition = params.definition(&args.name)?;
    let peer = start_peer(&args.replica.data_dir, key, &args.replica.bootstrap).await?;
    let address = peer.define(definition);
    peer.close().await;
    print_line(&address.to_string());
    Ok(())
}

/// Reads and checks every document before writing any: bad input writes nothing.
fn read_documents(args: &PutArgs, id_field: &str) -> Result<Vec<(DocId, Value)>> {
    let lines: Vec<String> = match &args.json {
        Some(doc) => vec![doc.clone()],
        None => std::io::stdin()
            .lock()
            .lines()
            .collect::<std::io::Result<_>>()
            .context("reading stdin")?,
    };
    let mut docs = Vec::new();
    for (no, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let doc = parse_document(line).with_context(|| format!("line {}", no + 1))?;
        let id = json_id(&doc, id_field).with_context(|| format!("line {}", no + 1))?;
        docs.push((id, doc));
    }
    Ok(docs)
}

async fn put(args: PutArgs) -> Result<()> {
    let (peer, store) = open(&args.replica, args.address, Role::Observer).await?;
    let result = async {
        let docs = read_documents(&args, &store.id_field)?;
        if !args.replica.bootstrap.is_empty() {
            // Know the replicators first, so the writes go straight to them (a sharded
            // store's: every range, so each write goes to its keepers).
            store
                .replica
                .wait_for_replicators(args.replica.replicas, timeout(&args.replica))
                .await;
            if store.replica.is_sharded() {
                store.replica.wait_reachable(timeout(&args.replica)).await;
            }
        }
        let pairs = docs.iter().map(|(id, d)| (id.clone(), d));
        let hashes = if args.encrypt_to.is_empty() {
            store.replica.put_many(pairs)?
        } else {
            let to = crate::keys::receiver_keys(&args.encrypt_to)?;
            let index = if args.sealed_index {
                IndexVisibility::Sealed
            } else {
                IndexVisibility::Public
            };
            store.replica.put_many_encrypted(pairs, &to, index)?
        };
        for (id, _) in &docs {
            print_line(&id_to_json(id).to_string());
        }
        wait_for_replicas(&args.replica, &store, &hashes).await
    }
    .await;
    peer.close().await;
    result
}

async fn get(args: GetArgs, delete: bool) -> Result<()> {
    let (peer, store) = open(&args.replica, args.address, Role::Observer).await?;
    let id = id_from_text(&args.id);
    let result = async {
        if delete {
            if !store.replica.delete(id.clone())? {
                bail!("not found: {}", args.id);
            }
            let hash = store
                .replica
                .with_documents(|d| d.head_entry(&id))?
                .map(|e| e.hash());
            wait_for_replicas(&args.replica, &store, &hash.into_iter().collect::<Vec<_>>()).await?;
            print_line(&format!("deleted {}", id_to_json(&id)));
            return Ok(());
        }
        let doc = if args.remote {
            store.replica.get_remote(id, timeout(&args.replica)).await
        } else {
            store.replica.get(id)
        };
        match doc.map_err(unreadable)? {
            Some(doc) => {
                print_line(&doc.to_string());
                Ok(())
            }
            None => bail!("not found: {}", args.id),
        }
    }
    .await;
    peer.close().await;
    result
}

async fn query(args: QueryArgs) -> Result<()> {
    let filter = match &args.filter {
        Some(text) => parse_filter(text).context("--where")?,
        None => Filter::All,
    };
    let sort = args
        .sort
        .iter()
        .map(|s| parse_sort(s))
        .collect::<Result<Vec<_>, _>>()
        .context("--sort")?;
    let q = Query {
        filter,
        sort,
        limit: args.limit,
    };
    let (peer, store) = open(&args.replica, args.address, Role::Observer).await?;
    let result = async {
        let found = if args.remote {
            if !store
                .replica
                .wait_for_replicators(1, timeout(&args.replica))
                .await
            {
                bail!("no replicator of this store reachable (give --bootstrap)");
            }
            store
                .replica
                .query_remote(&q, timeout(&args.replica))
                .await?
        } else {
            store.replica.query(&q)?
        };
        if args.count {
            print_line(&found.len().to_string());
        } else {
            for (_, doc) in &found {
                print_line(&doc.to_string());
            }
        }
        if !args.remote {
            let hidden = store.replica.with_documents(|d| d.unreadable())?;
            if hidden > 0 {
                eprintln!(
                    "{hidden} document(s) here are encrypted to other keys: not read, not in this answer"
                );
            }
        }
        Ok(())
    }
    .await;
    peer.close().await;
    result
}

async fn watch(args: WatchArgs) -> Result<()> {
    // A replicator: writers push to it, and it reconciles with the others.
    let (peer, store) = open(&args.replica, args.address, Role::Replicator).await?;
    let mut changes = store.replica.changes();
    eprintln!("watching {}; Ctrl-C to stop", args.address);
    loop {
        tokio::select! {
            change = changes.recv() => match change {
                Ok(change) => {
                    for (id, _) in change.added {
                        let line = match store.replica.get(id.clone()) {
                            Ok(doc) => serde_json::json!({"added": id_to_json(&id), "doc": doc}),
                            Err(DocumentError::Unreadable { .. }) => {
                                serde_json::json!({"added": id_to_json(&id), "encrypted": true})
                            }
                            Err(e) => return Err(e.into()),
                        };
                        print_line(&line.to_string());
                    }
                    for (id, _) in change.removed {
                        print_line(&serde_json::json!({"removed": id_to_json(&id)}).to_string());
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    print_line(&serde_json::json!({"missed": n}).to_string());
                }
                Err(_) => break,
            },
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    peer.close().await;
    Ok(())
}

/// Opens each store of `addresses` as a replicator on `peer` (for `starling run --replicate`).
pub(crate) async fn replicate(
    peer: &Peer,
    addresses: &[ProgramAddress],
    wait: Duration,
) -> Result<Vec<Replica<Value, Json>>> {
    let mut out = Vec::new();
    for address in addresses {
        let definition = peer
            .fetch_definition(*address, wait)
            .await
            .with_context(|| format!("cannot replicate {address}"))?;
        if definition.kind() == starling_engine::trust::TRUST_KIND {
            // The peer keeps the graph open (and replicates its statements) while it runs.
            peer.open_trust(*address, wait)
                .await
                .with_context(|| format!("cannot replicate {address}"))?;
            tracing::info!(%address, "replicating a trust graph");
            continue;
        }
        let (replica, _) = peer
            .open_json(*address, ReplicaOptions::default(), wait)
            .await
            .with_context(|| format!("cannot replicate {address}"))?;
        tracing::info!(%address, "replicating");
        out.push(replica);
    }
    Ok(out)
}
