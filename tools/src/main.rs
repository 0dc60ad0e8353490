//! `starling`: the command-line node.

mod demo;
mod docs;
mod keys;
mod node;
mod streams;
mod trust;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Starling: a peer-to-peer database and streaming engine.
#[derive(Debug, Parser)]
#[command(name = "starling", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate a key file (libp2p protobuf encoding, mode 0600) and print its PeerId.
    Keygen(keys::KeygenArgs),
    /// Print the PeerId of a key file or of a raw secret key.
    Id(keys::IdArgs),
    /// Start a swarm node: listen on QUIC, print its multiaddr, relay for the overlay until Ctrl-C.
    Run(streams::RunArgs),
    /// Publish a live stream (a file, stdin or synthetic frames); prints its multiaddr and the
    /// stream's address.
    Publish(streams::PublishArgs),
    /// Subscribe to a live stream by address; frames to a file or stdout, stats to stderr.
    Subscribe(Box<streams::SubscribeArgs>),
    /// A local swarm streaming frames through the overlay: the quickest way to see Starling work.
    Demo(demo::DemoArgs),
    /// Dial a node, print its PeerId and round-trip times (and optionally stream frames to it).
    Ping(node::PingArgs),
    /// JSON document stores: create, put, get, del, query, watch.
    Docs(docs::DocsArgs),
    /// Trust graphs: create one, delegate to a key, revoke it, check a key.
    Trust(trust::TrustArgs),
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Keygen(args) => keys::keygen(args),
        Command::Id(args) => keys::id(args),
        Command::Run(args) => runtime()?.block_on(streams::run(args)),
        Command::Publish(args) => runtime()?.block_on(streams::publish(args)),
        Command::Subscribe(args) => runtime()?.block_on(streams::subscribe(*args)),
        Command::Demo(args) => runtime()?.block_on(demo::run(args)),
        Command::Ping(args) => runtime()?.block_on(node::ping(args)),
        Command::Docs(args) => runtime()?.block_on(docs::docs(args)),
        Command::Trust(args) => runtime()?.block_on(trust::trust(args)),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every subcommand's arguments are well formed (clap checks names, conflicts, defaults).
    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
