//! Trust graphs: a root identity delegates to other keys (with scopes, an expiry, and whether
//! they may delegate further), revokes from a clock on, and access rules ask the graph.
//!
//! - [`graph`]: the rules, sans-IO — statements in, [`Verdict`]s out (every peer holding the
//!   same statements answers the same).
//! - [`program`]: [`Trust`], a graph as a program: its definition names the root and hashes
//!   to the address every peer opens it by; its statements are entries of an immutable
//!   document store, replicated like any (`Peer::open_trust`). A document store whose
//!   definition says `Writers::Trusted(address)` accepts the keys this graph trusts.
//!
//! Alice's laptop writes to her notes through a delegation, until she revokes it:
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use starling_engine::documents::{
//!     DocumentError, DocumentsParams, IndexSpec, Postcard, ReplicaOptions, Writers,
//! };
//! use starling_engine::trust::{Delegation, Verdict};
//! use starling_engine::{Peer, PeerConfig};
//! use starling_net::entry::unix_time_us;
//! use starling_net::{KeyType, Keypair};
//!
//! let wait = Duration::from_secs(10);
//! let alice = Peer::start(Keypair::generate(KeyType::Ed25519), PeerConfig::default()).await?;
//! let laptop = Peer::start(
//!     Keypair::generate(KeyType::Ed25519),
//!     PeerConfig { bootstrap: vec![alice.local_addr()], ..PeerConfig::default() },
//! )
//! .await?;
//!
//! // Alice's graph (rooted at her key) trusts the laptop; her notes take trusted writers.
//! let graph = alice.create_trust("alice's devices")?;
//! let devices = alice.open_trust(graph, wait).await?;
//! devices.delegate(&laptop.public_key(), Delegation::default())?;
//! let params = DocumentsParams { writers: Writers::Trusted(graph.0.to_vec()), ..Default::default() };
//! let notes = alice.define(params.definition("notes")?);
//! let (at_alice, _) = alice
//!     .open_documents_at::<String, _>(notes, Postcard, IndexSpec::new(), ReplicaOptions::default(), wait)
//!     .await?;
//!
//! // The laptop opens the notes by address (and with them the graph) and writes.
//! let (at_laptop, _) = laptop
//!     .open_documents_at::<String, _>(notes, Postcard, IndexSpec::new(), ReplicaOptions::default(), wait)
//!     .await?;
//! let seen = laptop.open_trust(graph, wait).await?;
//! while !seen.is_trusted(&laptop.public_key(), unix_time_us()).is_trusted() {
//!     tokio::time::sleep(Duration::from_millis(50)).await;
//! }
//! let first = at_laptop.put("n1", &"written on the laptop".to_string())?;
//! assert!(at_laptop.wait_for_replicas(&[first], 1, wait).await);
//! assert!(at_alice.get("n1")?.is_some());
//!
//! // Revoked: the laptop's later writes are refused; the first stays.
//! devices.revoke(&laptop.public_key())?;
//! while seen.is_trusted(&laptop.public_key(), unix_time_us()) != Verdict::NotTrusted {
//!     tokio::time::sleep(Duration::from_millis(50)).await;
//! }
//! assert!(matches!(at_laptop.put("n2", &"too late".to_string()), Err(DocumentError::Denied { .. })));
//! assert!(at_alice.get("n1")?.is_some());
//! # laptop.close().await;
//! # alice.close().await;
//! # Ok(())
//! # }
//! ```

pub mod graph;
pub mod program;

pub use graph::{MAX_DEPTH, Stamp, Statement, TrustGraph, Verdict};
pub use program::{Delegation, TRUST_KIND, Trust, TrustParams};
