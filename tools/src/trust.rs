//! `starling trust`: trust graphs from the shell — create one rooted at this key, delegate to
//! another key (a second device), revoke it, and check a key. The graph created last in a
//! data directory is its default (`DIR/trust-graph`); `--graph ADDRESS` names another.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use starling_engine::Peer;
use starling_engine::program::ProgramAddress;
use starling_engine::trust::{Delegation, Trust, Verdict};
use starling_net::entry::unix_time_us;

use crate::docs::{ReplicaArgs, replica_key, start_peer, timeout};

#[derive(Debug, Args)]
pub(crate) struct TrustArgs {
    #[command(subcommand)]
    command: TrustCommand,
}

#[derive(Debug, Subcommand)]
enum TrustCommand {
    /// Create a trust graph rooted at this key; prints its address (and makes it this data
    /// directory's default graph).
    Create(CreateArgs),
    /// Delegate to a key (a PeerId): it is trusted from now on.
    Add(AddArgs),
    /// Revoke a key: from now on this key's delegations to it (the root's: all) stop counting.
    Revoke(KeyArgs),
    /// Is a key trusted (now, or --at)? Prints the chain; exit 0 trusted, 1 not, 2 catching up.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// The graph's name (part of its definition, so of its address).
    name: String,
    #[command(flatten)]
    replica: ReplicaArgs,
}

#[derive(Debug, Args)]
struct KeyArgs {
    /// The key, as a PeerId.
    #[arg(value_name = "KEY")]
    subject: String,
    /// The graph (default: the one `trust create` made in --data-dir).
    #[arg(long)]
    graph: Option<ProgramAddress>,
    #[command(flatten)]
    replica: ReplicaArgs,
}

#[derive(Debug, Args)]
struct AddArgs {
    #[command(flatten)]
    target: KeyArgs,
    /// Stop counting after this long (`90s`, `12h`, `30d`).
    #[arg(long)]
    expires: Option<String>,
    /// Trusted for these scopes only (repeatable; default: everything). A store or stream
    /// whose writers are this graph's asks for its own name (`docs create NAME`, the NAME of
    /// `live/OWNER/NAME`).
    #[arg(long)]
    scope: Vec<String>,
    /// The key may delegate in turn.
    #[arg(long)]
    may_delegate: bool,
}

#[derive(Debug, Args)]
struct CheckArgs {
    #[command(flatten)]
    target: KeyArgs,
    /// As of this Unix time in seconds (default: now).
    #[arg(long)]
    at: Option<f64>,
    /// For this scope.
    #[arg(long)]
    scope: Option<String>,
}

pub(crate) async fn trust(args: TrustArgs) -> Result<()> {
    match args.command {
        TrustCommand::Create(a) => create(a).await,
        TrustCommand::Add(a) => add(a).await,
        TrustCommand::Revoke(a) => revoke(a).await,
        TrustCommand::Check(a) => check(a).await,
    }
}

fn default_graph_file(dir: &Path) -> std::path::PathBuf {
    dir.join("trust-graph")
}

/// `90s`, `15m`, `12h`, `30d` → Duration.
fn parse_duration(text: &str) -> Result<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (n, unit) = text.split_at(split);
    let n: u64 = n
        .parse()
        .with_context(|| format!("--expires {text}: a number, then s, m, h or d"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        other => bail!("--expires {text}: unknown unit {other:?} (s, m, h or d)"),
    };
    Ok(Duration::from_secs(secs))
}

fn subject(text: &str) -> Result<starling_net::PublicKey> {
    let mut keys = crate::keys::receiver_keys(&[text.to_string()])
        .map_err(|e| anyhow::anyhow!("{}", e.to_string().replace("--encrypt-to", "key")))?;
    keys.pop().context("a key")
}

/// The peer and the graph `args` names, opened (fetched from --bootstrap when not here).
async fn open(args: &KeyArgs) -> Result<(Peer, Trust)> {
    let graph = match args.graph {
        Some(g) => g,
        None => {
            let file = default_graph_file(&args.replica.data_dir);
            let text = std::fs::read_to_string(&file).with_context(|| {
                format!(
                    "no default trust graph in {} (give --graph ADDRESS, or run `starling trust create`)",
                    args.replica.data_dir.display()
                )
            })?;
            text.trim()
                .parse()
                .with_context(|| format!("{} holds no address", file.display()))?
        }
    };
    let key = replica_key(&args.replica)?;
    let peer = start_peer(&args.replica.data_dir, key, &args.replica.bootstrap).await?;
    let wait = if args.replica.bootstrap.is_empty() {
        Duration::ZERO
    } else {
        timeout(&args.replica)
    };
    match peer.open_trust(graph, wait).await {
        Ok(t) => {
            if !args.replica.bootstrap.is_empty() {
                t.wait_caught_up(timeout(&args.replica)).await;
            }
            Ok((peer, t))
        }
        Err(e) => {
            peer.close().await;
            bail!("cannot open the trust graph {graph}: {e}")
        }
    }
}

/// With --bootstrap: waits until a replicator of the graph holds `hash`.
async fn wait_held(args: &KeyArgs, trust: &Trust, hash: starling_engine::EntryHash) -> Result<()> {
    if args.replica.bootstrap.is_empty() || args.replica.replicas == 0 {
        return Ok(());
    }
    let r = trust.replica();
    if !r
        .wait_for_replicas(&[hash], args.replica.replicas, timeout(&args.replica))
        .await
    {
        bail!("the statement did not reach a replicator of the graph in time (kept here)");
    }
    Ok(())
}

async fn create(args: CreateArgs) -> Result<()> {
    let key = replica_key(&args.replica)?;
    let peer = start_peer(&args.replica.data_dir, key, &args.replica.bootstrap).await?;
    let address = peer.create_trust(&args.name);
    peer.close().await;
    let address = address?;
    std::fs::write(
        default_graph_file(&args.replica.data_dir),
        format!("{address}\n"),
    )
    .context("saving the default graph")?;
    println!("{address}");
    Ok(())
}

async fn add(args: AddArgs) -> Result<()> {
    let subject = subject(&args.target.subject)?;
    let expires_us = match &args.expires {
        Some(text) => Some(unix_time_us().saturating_add(parse_duration(text)?.as_micros() as u64)),
        None => None,
    };
    let (peer, trust) = open(&args.target).await?;
    let result = async {
        let hash = trust.delegate(
            &subject,
            Delegation {
                scopes: args.scope.clone(),
                expires_us,
                may_delegate: args.may_delegate,
            },
        )?;
        wait_held(&args.target, &trust, hash).await?;
        println!("delegated to {}", subject.peer_id());
        Ok(())
    }
    .await;
    peer.close().await;
    result
}

async fn revoke(args: KeyArgs) -> Result<()> {
    let subject = subject(&args.subject)?;
    let (peer, trust) = open(&args).await?;
    let result = async {
        let hash = trust.revoke(&subject)?;
        wait_held(&args, &trust, hash).await?;
        println!("revoked {}", subject.peer_id());
        Ok(())
    }
    .await;
    peer.close().await;
    result
}

async fn check(args: CheckArgs) -> Result<()> {
    let subject = subject(&args.target.subject)?;
    let at = match args.at {
        Some(s) => (s.max(0.0) * 1e6) as u64,
        None => unix_time_us(),
    };
    let (peer, trust) = open(&args.target).await?;
    let verdict = trust.check(&subject, at, args.scope.as_deref());
    peer.close().await;
    match verdict {
        Verdict::Trusted { chain } => {
            let mut names = vec![format!("{} (root)", trust.root().peer_id())];
            names.extend(chain.iter().map(|k| k.peer_id().to_string()));
            println!("trusted: {}", names.join(" → "));
            Ok(())
        }
        Verdict::NotTrusted => {
            println!("not trusted");
            std::process::exit(1);
        }
        Verdict::CatchingUp => {
            println!("catching up: this peer has not reached the graph's replicators yet");
            std::process::exit(2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(
            parse_duration("30d").unwrap(),
            Duration::from_secs(2_592_000)
        );
        assert!(parse_duration("3w").is_err());
        assert!(parse_duration("h").is_err());
    }
}
