//! `starling-loadtest`: measured scenarios that print a table and, as the last line, one JSON
//! object, with a baseline measured in the same run wherever one exists.

mod crypto;
mod docs;
mod fanout;
mod link;
mod replsim;
mod shard;
mod sig;
mod sim;
mod store;
mod util;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Starling load tests.
#[derive(Debug, Parser)]
#[command(name = "starling-loadtest", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// End-to-end encryption: encrypted against plain appends of 64 KiB, raw
    /// XChaCha20-Poly1305, and wrapping a content key for 1, 10 and 100 receivers.
    Crypto(crypto::CryptoArgs),
    /// Signature throughput: sign, verify one by one, and batch-verify (Ed25519 and secp256k1).
    Sig(sig::SigArgs),
    /// One loopback link: raw quinn (the ceiling) against Starling's signed-frame pipeline.
    Link(link::LinkArgs),
    /// Storage: raw fjall (the ceiling) against Starling's append and join.
    Store(store::StoreArgs),
    /// The overlay simulator: thousands of direct-sub cores in virtual time.
    Sim(sim::SimArgs),
    /// A live-streaming swarm over real QUIC: latency histograms, goodput, memory, and raw
    /// quinn fan-out as the baseline.
    Fanout(fanout::FanoutArgs),
    /// The document store: local puts against raw fjall, replication across processes,
    /// fan-out, queries, a fresh replicator's sync, reconciliation bytes.
    Docs(docs::DocsArgs),
    /// A sharded document store over QUIC: 8 replicators, 100,000 documents, 2 killed, 2
    /// joining; searches against a full-replica reference.
    Shard(shard::ShardArgs),
    /// Sharded replication in virtual time: the placement core with 1,000 replicators, a
    /// million documents and churn, against a naive baseline.
    ReplSim(replsim::ReplSimArgs),
    /// (internal) One replicator process of `docs`.
    #[command(hide = true)]
    DocsReplica(docs::ReplicaArgs),
    /// (internal) One worker process of `fanout --procs`.
    #[command(hide = true)]
    FanoutWorker(fanout::WorkerArgs),
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    match Cli::parse().command {
        Command::Sig(args) => sig::run(args),
        Command::Crypto(args) => crypto::run(args),
        Command::Link(args) => runtime()?.block_on(link::run(args)),
        Command::Store(args) => store::run(args),
        Command::Sim(args) => sim::run(args),
        Command::Fanout(args) => runtime()?.block_on(fanout::run(args)),
        Command::FanoutWorker(args) => runtime()?.block_on(fanout::worker(args)),
        Command::ReplSim(args) => replsim::run(args),
        Command::Shard(args) => runtime()?.block_on(shard::run(args)),
        Command::Docs(args) => runtime()?.block_on(docs::run(args)),
        Command::DocsReplica(args) => runtime()?.block_on(docs::replica(args)),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
