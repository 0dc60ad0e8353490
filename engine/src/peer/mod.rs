//! [`Peer`]: the one handle an application holds — a QUIC endpoint, an overlay node, a store,
//! and the streams it publishes or subscribes to; programs (definitions, document stores) are
//! opened through it too ([`programs`]).

mod programs;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use starling_net::crypto::Opener;
use starling_net::entry::unix_time_us;
use starling_net::overlay::{OverlayConfig, OverlayNode};
use starling_net::transport::{Endpoint, Multiaddr, TransportConfig, quic_multiaddr};
use starling_net::{Keypair, PeerId};
use starling_store::{Durability, Store, StoreConfig};

use crate::documents::replica::programs::Programs;
use crate::log::{Log, LogConfig, Retention};
use crate::program::exchange::{self, Definitions};
use crate::router::{Protocol, ProtocolTaken, Routed, Router, RouterStats};
use crate::stream::catch_up;
use crate::stream::delegation::StreamWriters;
use crate::stream::publisher::Windows;
use crate::stream::subscription::{CatchUpRoutes, SubscriptionParts};
use crate::stream::{
    PeerError, PublishOptions, Publisher, StreamAddress, StreamError, SubscribeOptions,
    Subscription,
};
use crate::trust::{Trust, Verdict};

/// Settings of a [`Peer`].
#[derive(Clone, Debug)]
pub struct PeerConfig {
    /// Where to listen. Default `127.0.0.1:0` (loopback, any port).
    pub listen: SocketAddr,
    /// Peers to connect to at start. Starting fails only if every one of them fails.
    pub bootstrap: Vec<SocketAddr>,
    /// Where logs are stored; `None` keeps them in a temporary directory removed on drop.
    pub data_dir: Option<PathBuf>,
    /// Overlay settings.
    pub overlay: OverlayConfig,
    /// Transport settings.
    pub transport: TransportConfig,
    /// Store settings. Default: [`StoreConfig::default`] with [`Durability::Periodic`] every
    /// 200 ms — a stream window is for catch-up, so a power cut may lose its last 200 ms, while
    /// a killed process loses nothing written.
    pub store: StoreConfig,
    /// Catch-up replies this peer sends per second, node-wide, whoever asks (late joiners of
    /// the streams it publishes). Default 32 MiB/s: 128 late joiners a second at 2 Mbit/s and
    /// a keyframe a second; beyond it requests are dropped and joiners start at the next
    /// keyframe.
    pub catch_up_bytes_per_s: u64,
    /// Program definitions this peer sends per second when asked, node-wide. Default 4 MiB/s
    /// (64 of the largest definitions).
    pub definition_bytes_per_s: u64,
}

impl Default for PeerConfig {
    fn default() -> Self {
        PeerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            bootstrap: Vec::new(),
            data_dir: None,
            overlay: OverlayConfig::default(),
            transport: TransportConfig::default(),
            store: StoreConfig {
                durability: Durability::Periodic(Duration::from_millis(200)),
                ..StoreConfig::default()
            },
            catch_up_bytes_per_s: 32 << 20,
            definition_bytes_per_s: 4 << 20,
        }
    }
}

/// A stream opened by name or address: ours to publish, or someone's to watch.
#[derive(Debug)]
pub enum LiveStream {
    /// This peer owns it.
    Publisher(Box<Publisher>),
    /// Another peer owns it.
    Subscriber(Box<Subscription>),
}

/// A running peer. Cheap to clone; [`Peer::close`] stops it for every clone.
#[derive(Clone, Debug)]
pub struct Peer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    key: Keypair,
    /// Opens what is encrypted to this peer's key (streams; document stores have their own).
    opener: Arc<Opener>,
    node: OverlayNode,
    config: PeerConfig,
    /// Opened on first use: a subscriber that does not persist never starts a store.
    store: Mutex<Option<(Store, Option<tempfile::TempDir>)>>,
    windows: Windows,
    routes: Arc<CatchUpRoutes>,
    /// Hands direct messages to programs by protocol tag.
    router: Arc<Router>,
    /// Program definitions this peer has, and fetches under way.
    definitions: Arc<Definitions>,
    /// Document programs open here, by address.
    documents: Arc<Programs>,
    /// Trust graphs open here, by address (shared by the stores whose writers they decide).
    trusts: Mutex<std::collections::HashMap<crate::program::ProgramAddress, Trust>>,
    /// The router and the programs' protocol tasks (stream catch-up, definitions).
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Peer {
    /// Binds, starts the overlay and connects to the bootstrap peers. Must run inside a tokio
    /// runtime.
    pub async fn start(key: Keypair, config: PeerConfig) -> Result<Peer, PeerError> {
        let endpoint = Endpoint::bind(key.clone(), config.listen, config.transport.clone())?;
        let (node, inboxes) = OverlayNode::start(endpoint, config.overlay.clone());
        let windows: Windows = Arc::default();
        let routes: Arc<CatchUpRoutes> = Arc::default();
        let router = Arc::new(Router::default());
        let catch_ups = router
            .register(Protocol::STREAM_CATCH_UP)
            .expect("a fresh router has no protocols");
        let programs = router
            .register(Protocol::PROGRAMS)
            .expect("a fresh router has no protocols");
        let documents_inbox = router
            .register(Protocol::DOCUMENTS)
            .expect("a fresh router has no protocols");
        let definitions = Arc::new(Definitions::default());
        let documents = Arc::new(Programs::default());
        let tasks = vec![
            tokio::spawn(documents.clone().serve(documents_inbox)),
            tokio::spawn(router.clone().run(inboxes.direct)),
            tokio::spawn(router.clone().run_reliable(inboxes.app)),
            tokio::spawn(exchange::serve(
                programs,
                node.clone(),
                definitions.clone(),
                config.definition_bytes_per_s,
            )),
            tokio::spawn(catch_up::serve(
                catch_ups,
                node.clone(),
                windows.clone(),
                routes.clone(),
                config.catch_up_bytes_per_s,
            )),
        ];
        let peer = Peer {
            inner: Arc::new(Inner {
                opener: Arc::new(Opener::new(&key)),
                key,
                node,
                config,
                store: Mutex::new(None),
                windows,
                routes,
                router,
                definitions,
                documents,
                trusts: Mutex::default(),
                tasks,
            }),
        };
        let mut last_error = None;
        let mut connected = 0;
        for addr in &peer.inner.config.bootstrap {
            match peer.connect(*addr).await {
                Ok(id) => {
                    tracing::info!(%id, %addr, "connected to bootstrap peer");
                    connected += 1;
                }
                Err(e) => {
                    tracing::warn!(%addr, "bootstrap peer unreachable: {e}");
                    last_error = Some(e);
                }
            }
        }
        match last_error {
            Some(e) if connected == 0 => {
                peer.close().await;
                Err(e)
            }
            _ => Ok(peer),
        }
    }

    /// Registers a program's protocol: direct messages carrying `protocol`'s tag arrive on the
    /// returned inbox (bounded: [`crate::router::PROTOCOL_INBOX`]) until it is dropped.
    /// [`Protocol::STREAM_CATCH_UP`] is the peer's own.
    pub fn register_protocol(
        &self,
        protocol: Protocol,
    ) -> Result<tokio::sync::mpsc::Receiver<Routed>, ProtocolTaken> {
        self.inner.router.register(protocol)
    }

    /// Sends a direct message (signed, routed over the overlay) to `dest`; `message` starts
    /// with its protocol's tag ([`Protocol::message`]).
    pub fn send_direct(&self, dest: PeerId, message: bytes::Bytes) {
        self.inner.node.send(dest, message);
    }

    /// What the router dropped (unknown protocols, full inboxes).
    pub fn router_stats(&self) -> RouterStats {
        let mut stats = self.inner.router.stats();
        stats.unknown += self.inner.documents.unknown();
        stats
    }

    /// This peer's PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.inner.key.peer_id()
    }

    /// This peer's public key (what access rules name).
    pub fn public_key(&self) -> starling_net::PublicKey {
        *self.inner.key.public()
    }

    /// The socket it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.node.local_addr()
    }

    /// Its address as others dial it: `/ip4/…/udp/…/quic-v1/p2p/<PeerId>`.
    pub fn multiaddr(&self) -> Multiaddr {
        quic_multiaddr(self.local_addr(), Some(self.peer_id()))
    }

    /// The overlay node underneath (stats, tree parent, test throttling).
    pub fn overlay(&self) -> &OverlayNode {
        &self.inner.node
    }

    /// Connects to a peer; returns its PeerId.
    pub async fn connect(&self, addr: SocketAddr) -> Result<PeerId, PeerError> {
        Ok(self.inner.node.connect(addr).await?)
    }

    /// The address of this peer's stream `name`.
    pub fn stream_address(&self, name: &str) -> Result<StreamAddress, StreamError> {
        StreamAddress::new(self.inner.key.public(), name)
    }

    /// Opens a stream by name (ours) or by address (ours or another peer's), with default
    /// options.
    pub fn open_stream(&self, name_or_address: &str) -> Result<LiveStream, PeerError> {
        let address = if name_or_address.starts_with(crate::stream::address::ADDRESS_PREFIX) {
            StreamAddress::parse(name_or_address)?
        } else {
            self.stream_address(name_or_address)?
        };
        Ok(if address.owner() == self.peer_id() {
            LiveStream::Publisher(Box::new(
                self.publish_stream(address.name(), PublishOptions::default())?,
            ))
        } else {
            LiveStream::Subscriber(Box::new(
                self.subscribe(&address, SubscribeOptions::default())?,
            ))
        })
    }

    /// Starts publishing this peer's stream `name`.
    pub fn publish_stream(
        &self,
        name: &str,
        options: PublishOptions,
    ) -> Result<Publisher, PeerError> {
        let address = self.stream_address(name)?;
        self.publish_address(address, options)
    }

    /// Starts publishing another owner's stream as one of its devices: `owner_graph` (rooted
    /// at the stream's owner) must trust this peer's key now. Frames are signed by this
    /// peer's key and this peer is the root of the stream's tree; subscribers name it as
    /// [`SubscribeOptions::publisher`] and follow the same graph, so once the owner revokes
    /// this key they refuse its later frames.
    pub fn publish_delegated(
        &self,
        address: &StreamAddress,
        owner_graph: &Trust,
        options: PublishOptions,
    ) -> Result<Publisher, PeerError> {
        check_graph(address, owner_graph)?;
        let now = unix_time_us();
        let verdict = match owner_graph.check(&self.public_key(), now, Some(address.name())) {
            Verdict::Trusted { .. } => None,
            Verdict::NotTrusted => Some("not trusted"),
            Verdict::CatchingUp => Some("the graph is still catching up"),
        };
        if let Some(verdict) = verdict {
            return Err(StreamError::NotDelegated {
                stream: address.to_string(),
                verdict,
            }
            .into());
        }
        self.publish_address(address.clone(), options)
    }

    fn publish_address(
        &self,
        address: StreamAddress,
        options: PublishOptions,
    ) -> Result<Publisher, PeerError> {
        // The stream is a program too: anyone can open it by its program address.
        self.define(address.definition());
        let store = self.store()?;
        let log = Log::open(
            store,
            address.log_id(),
            self.inner.key.clone(),
            LogConfig {
                // Media does not compress; the probe would only cost time.
                compression: None,
                retention: Retention {
                    keep_last: Some(options.window_frames as u64),
                    ..Retention::default()
                },
                ..LogConfig::default()
            },
        )?;
        Ok(Publisher::new(
            address,
            log,
            self.inner.node.clone(),
            self.inner.windows.clone(),
            options,
        ))
    }

    /// Subscribes to another peer's stream.
    pub fn subscribe(
        &self,
        address: &StreamAddress,
        options: SubscribeOptions,
    ) -> Result<Subscription, PeerError> {
        let publisher = options.publisher.unwrap_or(address.owner());
        if publisher == self.peer_id() {
            return Err(StreamError::NotOwner(address.to_string()).into());
        }
        if let Some(graph) = &options.delegates {
            check_graph(address, graph)?;
        } else if publisher != address.owner() {
            return Err(StreamError::PublisherNeedsTrust(address.to_string()).into());
        }
        let writers = StreamWriters::new(
            *address.owner_key(),
            options
                .delegates
                .as_ref()
                .map(|t| t.hook_for(address.name())),
        );
        let log = if options.persist {
            let log = Log::open(
                self.store()?,
                address.log_id(),
                self.inner.key.clone(),
                LogConfig {
                    compression: None,
                    ..LogConfig::default()
                },
            )?
            .with_access(writers.entry_check());
            Some(log)
        } else {
            None
        };
        Ok(Subscription::start(SubscriptionParts {
            address: address.clone(),
            node: self.inner.node.clone(),
            routes: self.inner.routes.clone(),
            log,
            options,
            opener: self.inner.opener.clone(),
            publisher,
            writers,
        }))
    }

    pub(crate) fn store(&self) -> Result<Store, PeerError> {
        let mut slot = self
            .inner
            .store
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((store, _)) = slot.as_ref() {
            return Ok(store.clone());
        }
        let (dir, temp) = match &self.inner.config.data_dir {
            Some(dir) => (dir.clone(), None),
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("starling-peer-")
                    .tempdir()?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        let store = Store::open(&dir, self.inner.config.store.clone())?;
        *slot = Some((store.clone(), temp));
        Ok(store)
    }

    /// Stops the overlay and closes every connection (for every clone of this handle).
    pub async fn close(&self) {
        for task in &self.inner.tasks {
            task.abort();
        }
        self.inner.node.shutdown().await;
    }
}

/// A graph given for `address` must be its owner's.
fn check_graph(address: &StreamAddress, graph: &Trust) -> Result<(), StreamError> {
    if graph.root() == address.owner_key() {
        Ok(())
    } else {
        Err(StreamError::WrongTrustRoot {
            stream: address.to_string(),
            graph: graph.address().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_cross_threads() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<Peer>();
        send::<Publisher>();
        send::<Subscription>();
    }
}
