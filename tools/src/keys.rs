//! `starling keygen` and `starling id`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use starling_net::identity::{KeyType, Keypair, load_key_file, save_key_file};

#[derive(Debug, Args)]
pub(crate) struct KeygenArgs {
    /// Key type.
    #[arg(long = "type", default_value = "ed25519")]
    key_type: KeyType,
    /// Where to write the key file (refuses to overwrite an existing file).
    #[arg(long)]
    out: PathBuf,
    /// Overwrite an existing key file.
    #[arg(long)]
    force: bool,
}

pub(crate) fn keygen(args: KeygenArgs) -> Result<()> {
    if args.out.exists() && !args.force {
        bail!(
            "{} already exists; pass --force to replace it (its identity is lost)",
            args.out.display()
        );
    }
    let key = Keypair::generate(args.key_type);
    save_key_file(&args.out, &key)?;
    println!("{}", key.peer_id());
    Ok(())
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["key", "secret_hex"])))]
pub(crate) struct IdArgs {
    /// A key file written by `starling keygen` (or any libp2p implementation).
    #[arg(long)]
    key: Option<PathBuf>,
    /// Key type of --secret-hex.
    #[arg(long = "type", default_value = "ed25519", requires = "secret_hex")]
    key_type: KeyType,
    /// A raw 32-byte secret key in hex (Ed25519 seed or secp256k1 scalar).
    #[arg(long)]
    secret_hex: Option<String>,
}

pub(crate) fn id(args: IdArgs) -> Result<()> {
    let key = match (&args.key, &args.secret_hex) {
        (Some(path), _) => load_key_file(path)?,
        (None, Some(hex_text)) => {
            let bytes = hex::decode(hex_text.trim()).context("--secret-hex is not valid hex")?;
            Keypair::from_secret_bytes(args.key_type, &bytes)?
        }
        (None, None) => bail!("give --key FILE or --secret-hex HEX"),
    };
    println!("{}", key.peer_id());
    Ok(())
}

/// The public keys of `--encrypt-to` PeerIds (identity-multihash ids carry their key: every
/// Ed25519 and secp256k1 id does).
pub(crate) fn receiver_keys(peer_ids: &[String]) -> Result<Vec<starling_net::PublicKey>> {
    peer_ids
        .iter()
        .map(|text| {
            let id = starling_net::parse_peer_id(text)
                .map_err(|e| anyhow::anyhow!("--encrypt-to {text}: {e}"))?;
            starling_net::PublicKey::from_peer_id(&id)
                .map_err(|e| anyhow::anyhow!("--encrypt-to {text}: no public key in this id: {e}"))
        })
        .collect()
}
