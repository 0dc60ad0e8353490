//! Transport limits and quinn tuning, with the reasons for each value.

use std::sync::Arc;
use std::time::Duration;

use quinn::VarInt;

use super::windows::ReceiveWindows;
use crate::wire::DEFAULT_MAX_FRAME_LEN;

/// What the links sharing the budget may make a process hold on the receiving side, twice
/// over: received frames waiting for applications (readers take credit from their link's
/// `max_incoming_bytes` *and* from this), and quinn's connection receive windows (each link
/// gets `bytes / links`, see [`TransportConfig::receive_window`]). A process with 1,000 links
/// thus buffers at most about `2 × bytes`, while a few fast links still get their full
/// per-link credit and windows. Cheap to clone; clones share the budget.
#[derive(Clone, Debug)]
pub struct IncomingBudget {
    credit: Arc<tokio::sync::Semaphore>,
    total: usize,
    windows: Arc<ReceiveWindows>,
}

/// The budget every endpoint of a process shares unless given its own.
pub const DEFAULT_PROCESS_INCOMING_BYTES: usize = 256 << 20;

impl IncomingBudget {
    /// A budget of `bytes` for the endpoints given it.
    pub fn new(bytes: usize) -> IncomingBudget {
        let total = bytes.clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
        IncomingBudget {
            credit: Arc::new(tokio::sync::Semaphore::new(total)),
            total,
            windows: Arc::new(ReceiveWindows::new(total as u64)),
        }
    }

    /// The process-wide budget ([`DEFAULT_PROCESS_INCOMING_BYTES`]).
    pub fn process() -> IncomingBudget {
        static PROCESS: std::sync::OnceLock<IncomingBudget> = std::sync::OnceLock::new();
        PROCESS
            .get_or_init(|| IncomingBudget::new(DEFAULT_PROCESS_INCOMING_BYTES))
            .clone()
    }

    /// Bytes not taken right now.
    pub fn available(&self) -> usize {
        self.credit.available_permits()
    }

    /// The budget's size.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Links sharing the budget's receive windows right now.
    pub fn links(&self) -> usize {
        self.windows.links()
    }

    /// The connection receive window a link may grow to now, before its own
    /// `[min_receive_window, receive_window]` bounds: the budget over the links, rounded
    /// down to a power of two.
    pub fn window_share(&self) -> u64 {
        self.windows.current_share()
    }

    /// The receive window of each link sharing the budget now, in no particular order.
    pub fn link_windows(&self) -> Vec<u64> {
        self.windows.windows()
    }

    pub(super) fn semaphore(&self) -> &Arc<tokio::sync::Semaphore> {
        &self.credit
    }

    pub(super) fn windows(&self) -> &Arc<ReceiveWindows> {
        &self.windows
    }
}

/// Limits and tuning of an [`Endpoint`](super::Endpoint) and its links.
///
/// Worst-case memory per link is about `max_in_flight_bytes + send_window` on the sending side
/// and `receive_window + max_incoming_bytes` on the receiving side: 8 + 8 + 12 + 8 = 36 MiB
/// with the defaults, independent of what the remote does. Over all links of a process, the
/// receiving side is also bounded by `incoming_budget` (256 MiB by default), once for frames
/// waiting for applications and once for quinn's windows, which shrink as links are added:
/// 1,000 links hold at most about 512 MiB, and past 2,048 links (256 MiB over the 128 KiB
/// minimum window) another 128 KiB per link.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// Largest frame accepted or sent (length prefix excluded). Default 4 MiB.
    pub max_frame_len: usize,
    /// Bytes queued for sending on one link before `send` waits and `try_send` reports `Full`.
    /// Default 8 MiB.
    pub max_in_flight_bytes: usize,
    /// Bytes of received frames waiting for the application on one link before readers stop
    /// reading (and QUIC flow control stops the sender). Default 8 MiB.
    pub max_incoming_bytes: usize,
    /// Received-frame bytes shared by every link of the endpoints that share this budget.
    /// Default: the process-wide [`IncomingBudget::process`] (256 MiB).
    pub incoming_budget: IncomingBudget,
    /// Unidirectional streams a peer may have open at once (3 lanes plus slack). Default 8.
    pub max_incoming_streams: u32,
    /// Stream errors tolerated on one connection before it is closed. Default 8.
    pub max_protocol_errors: u32,
    /// Per-stream receive window. Default 4 MiB: at 1 GB/s and a loopback RTT of ~100 µs the
    /// bandwidth-delay product is ~100 KiB, so 4 MiB leaves room for scheduling hiccups; quinn
    /// 0.11 buffers received data per stream only as it arrives, and a slow reader holds at most
    /// this much (tested by the slow-reader test).
    pub stream_receive_window: u32,
    /// The largest connection receive window (over all lanes) a link grows to, when it
    /// receives fast enough to need it and few enough links share the `incoming_budget`.
    /// Default 12 MiB (three full lanes).
    pub receive_window: u32,
    /// The window a link starts with (the transport parameter a peer sees first) and never
    /// goes below, however many links share the budget. Default 128 KiB: the bandwidth-delay
    /// product of 1 GB/s over a 100 µs loopback RTT, or 2.6 MB/s over 50 ms.
    pub min_receive_window: u32,
    /// Bytes quinn may hold unacknowledged per connection. Default 8 MiB.
    pub send_window: u64,
    /// UDP socket send and receive buffers requested (the kernel caps them at
    /// `net.core.{w,r}mem_max`). Default 4 MiB: with quinn's default 212 KiB buffers, bursts
    /// of GSO segments are dropped on loopback and throughput falls by about a quarter.
    pub socket_buffer_bytes: usize,
    /// Inbound connections accepted at once; attempts beyond are refused before their
    /// handshake. Default 2,048.
    pub max_inbound_connections: usize,
    /// Inbound connections accepted at once from one source network (an IPv4 address or an
    /// IPv6 /64), so that one host cannot take them all. Default 64. A swarm of many peers on
    /// one host (the load tests, the demo) raises it.
    pub max_inbound_per_network: usize,
    /// A connection silent for this long is closed. Default 30 s.
    pub idle_timeout: Duration,
    /// Keep-alive interval, well under the idle timeout. Default 10 s.
    pub keep_alive: Duration,
    /// How long a dial may take. Default 10 s.
    pub connect_timeout: Duration,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            max_in_flight_bytes: 8 << 20,
            max_incoming_bytes: 8 << 20,
            incoming_budget: IncomingBudget::process(),
            max_incoming_streams: 8,
            max_protocol_errors: 8,
            stream_receive_window: 4 << 20,
            receive_window: 12 << 20,
            min_receive_window: 128 << 10,
            send_window: 8 << 20,
            socket_buffer_bytes: 4 << 20,
            max_inbound_connections: 2_048,
            max_inbound_per_network: 64,
            idle_timeout: Duration::from_secs(30),
            keep_alive: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

impl TransportConfig {
    /// The defaults, for a swarm of many peers on one host (the demo, load tests): every
    /// connection comes from one address, so the per-network inbound cap is lifted; the
    /// total cap stays.
    pub fn one_host_swarm() -> Self {
        TransportConfig {
            max_inbound_per_network: usize::MAX,
            ..TransportConfig::default()
        }
    }

    /// The quinn transport parameters these limits imply (shared by client and server).
    /// The connection window is fixed at `receive_window`, as a plain quinn user would set
    /// it (the load tests' baseline); [`Endpoint`](super::Endpoint)s start their links at
    /// `min_receive_window` and share the budget out from there.
    pub fn quinn_transport(&self) -> Arc<quinn::TransportConfig> {
        self.quinn_transport_with_window(self.receive_window)
    }

    pub(super) fn quinn_transport_with_window(&self, window: u32) -> Arc<quinn::TransportConfig> {
        let mut t = quinn::TransportConfig::default();
        t.stream_receive_window(VarInt::from_u32(self.stream_receive_window))
            .receive_window(VarInt::from_u32(window))
            .send_window(self.send_window)
            .max_concurrent_uni_streams(VarInt::from_u32(self.max_incoming_streams))
            // Lanes are unidirectional; no bidirectional streams are ever accepted.
            .max_concurrent_bidi_streams(VarInt::from_u32(0))
            .datagram_receive_buffer_size(None)
            .keep_alive_interval(Some(self.keep_alive))
            // GSO batches many packets per syscall; it is quinn's default, stated here because the
            // throughput figures depend on it.
            .enable_segmentation_offload(true);
        // An idle timeout beyond quinn's VarInt range is clamped to "never".
        t.max_idle_timeout(quinn::IdleTimeout::try_from(self.idle_timeout).ok());
        Arc::new(t)
    }
}
