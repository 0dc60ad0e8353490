//! `starling`: the command-line node.

mod keys;

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
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
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
    }
}
