//! Document stores: programs of kind [`DOCUMENTS_KIND`], opened by address on any peer,
//! queried by fields, replicated between peers.
//!
//! - [`Documents`]: a program's documents in this peer's store — put/put_many/get/delete/
//!   count/query, each change signed and committed with its document row and index rows in one
//!   store batch; replicated entries verified and resolved (clock, writer, hash).
//! - [`Replica`] ([`replica`]): the same documents kept in step with other peers — replicators
//!   hold everything and reconcile, observers write through them and read remotely.
//! - [`IndexSpec`] (named fields, projections), [`AccessRule`] (who may write),
//!   [`DocumentsParams`] (what the definition says), [`query`] (filters, sort, limit, the
//!   planner), [`keys`] (values as ordered bytes), [`codec`] (the serde seam, [`DocId`]),
//!   [`json`] (JSON stores and the `--where` language).
//!
//! Peerbit's first example, posts anyone can modify, between two peers:
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use serde::{Deserialize, Serialize};
//! use starling_engine::documents::keys::IndexValue;
//! use starling_engine::documents::{
//!     DocumentsParams, Filter, IndexSpec, Postcard, Query, ReplicaOptions, Role,
//! };
//! use starling_engine::{Peer, PeerConfig};
//! use starling_net::{KeyType, Keypair};
//!
//! #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
//! struct Post {
//!     title: String,
//!     likes: i64,
//! }
//! let index = || IndexSpec::new().field("likes", |p: &Post| IndexValue::Int(p.likes));
//! let wait = Duration::from_secs(10);
//!
//! // Alice defines the store (anyone may write) and replicates it.
//! let alice = Peer::start(Keypair::generate(KeyType::Ed25519), PeerConfig::default()).await?;
//! let address = alice.define(DocumentsParams::default().definition("posts")?);
//! let (at_alice, _) = alice
//!     .open_documents_at(address, Postcard, index(), ReplicaOptions::default(), wait)
//!     .await?;
//!
//! // Bob knows only the address; he fetches the definition and writes as an observer.
//! let bob = Peer::start(
//!     Keypair::generate(KeyType::Ed25519),
//!     PeerConfig { bootstrap: vec![alice.local_addr()], ..PeerConfig::default() },
//! )
//! .await?;
//! let observer = ReplicaOptions { role: Role::Observer, ..ReplicaOptions::default() };
//! let (at_bob, _) = bob.open_documents_at(address, Postcard, index(), observer, wait).await?;
//! at_bob.wait_for_replicators(1, wait).await;
//! let hello = at_bob.put("hello", &Post { title: "Hello".into(), likes: 0 })?;
//! assert!(at_bob.wait_for_replicas(&[hello], 1, wait).await);
//!
//! // Anyone can modify: Alice edits Bob's post; Bob's query asks the replicator.
//! at_alice.put("hello", &Post { title: "Hello, edited".into(), likes: 1 })?;
//! let liked = Query { filter: Filter::Ge("likes".into(), IndexValue::Int(1)), ..Query::default() };
//! let found = at_bob.query_remote(&liked, wait).await?;
//! assert_eq!(found[0].1.title, "Hello, edited");
//! # bob.close().await;
//! # alice.close().await;
//! # Ok(())
//! # }
//! ```
//!
//! A document only chosen receivers read: Alice puts a note encrypted to Bob. Carol, who
//! replicates the store, keeps and serves it without reading it; Bob reads it from Carol.
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use starling_engine::documents::{DocumentError, DocumentsParams, IndexSpec, Postcard, ReplicaOptions, Role};
//! use starling_engine::{Peer, PeerConfig};
//! use starling_net::{KeyType, Keypair};
//!
//! let wait = Duration::from_secs(10);
//! let start = |bootstrap: Vec<std::net::SocketAddr>| {
//!     Peer::start(Keypair::generate(KeyType::Ed25519), PeerConfig { bootstrap, ..PeerConfig::default() })
//! };
//! let carol = start(vec![]).await?;
//! let alice = start(vec![carol.local_addr()]).await?;
//! let bob = start(vec![carol.local_addr()]).await?;
//! let address = carol.define(DocumentsParams::default().definition("letters")?);
//! let role = |role| ReplicaOptions { role, ..ReplicaOptions::default() };
//! let (at_carol, _) = carol
//!     .open_documents_at::<String, _>(address, Postcard, IndexSpec::new(), role(Role::Replicator), wait)
//!     .await?;
//! let (at_alice, _) = alice
//!     .open_documents_at::<String, _>(address, Postcard, IndexSpec::new(), role(Role::Observer), wait)
//!     .await?;
//! let (at_bob, _) = bob
//!     .open_documents_at::<String, _>(address, Postcard, IndexSpec::new(), role(Role::Observer), wait)
//!     .await?;
//! at_alice.wait_for_replicators(1, wait).await;
//!
//! let sent = at_alice.put_encrypted("to-bob", &"meet at noon".to_string(), &[bob.public_key()])?;
//! assert!(at_alice.wait_for_replicas(&[sent], 1, wait).await);
//! assert!(matches!(at_carol.get("to-bob"), Err(DocumentError::Unreadable { .. })));
//! at_bob.wait_for_replicators(1, wait).await;
//! let letter = at_bob.get_remote("to-bob", wait).await?;
//! assert_eq!(letter.as_deref(), Some("meet at noon"));
//! # bob.close().await;
//! # alice.close().await;
//! # carol.close().await;
//! # Ok(())
//! # }
//! ```

mod access;
pub mod codec;
mod collection;
mod definition;
pub mod held;
mod index;
pub mod json;
pub mod keys;
pub mod query;
pub mod replica;

pub use access::{AccessHook, AccessRule, Operation, TrustHook};
pub use codec::{Codec, CodecError, DocId, Postcard};
pub use collection::{
    Applied, CHANGE_BUFFER, DocumentChange, DocumentError, Documents, DocumentsOptions, Pages,
};
pub use definition::{DOCUMENTS_KIND, DocumentsParams, Replicas, Writers};
pub use index::{IndexSpec, IndexVisibility};
pub use query::{Filter, Query, Sort};
pub use replica::{Replica, ReplicaOptions, ReplicaStats, Role, SearchAnswer, ShardStatus};
