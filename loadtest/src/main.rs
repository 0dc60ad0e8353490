//! `starling-loadtest`: measured scenarios that print a table and, as the last line, one JSON
//! object, with a baseline measured in the same run wherever one exists.

mod sig;

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
    /// Signature throughput: sign, verify one by one, and batch-verify (Ed25519 and secp256k1).
    Sig(sig::SigArgs),
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Sig(args) => sig::run(args),
    }
}
