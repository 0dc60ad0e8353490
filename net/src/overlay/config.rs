//! Overlay limits and timings.

/// Settings of one [`Overlay`](super::Overlay). Every cache and table is bounded by one of these.
///
/// Worst-case memory per node is about `max_topics × repair_cache_bytes` for frame caches plus
/// `dedup_cache × 16 B` and `max_routes × ~64 B`; with the defaults, 8 topics × 256 KiB = 2 MiB.
#[derive(Clone, Debug)]
pub struct OverlayConfig {
    /// Children admitted per topic. Default 4.
    pub max_children: usize,
    /// Upload capacity in bytes/s; a joiner is admitted only if every child can still get the
    /// topic's measured rate. Default 100 MB/s.
    pub upload_bytes_per_s: u64,
    /// Topics a node takes part in. Default 8.
    pub max_topics: usize,
    /// Children a node takes from one source network (see `Event::LinkNetwork`). Default 2.
    pub max_children_per_network: usize,
    /// Frames kept per topic for repair. Default 128.
    pub repair_cache: usize,
    /// …and at most this many bytes of them (the newest frame is always kept). Default 256 KiB
    /// (1 s of a 2 Mbit/s stream; most repairs follow a re-attachment within that).
    pub repair_cache_bytes: usize,
    /// Repair frames a topic serves its children per second, and as a burst. Default 1,024
    /// (eight children each re-filling a whole cache at once).
    pub repair_frames_per_s: u64,
    /// Repair frames a topic serves everyone else (grandchildren whose parent lacks them) per
    /// second, and as a burst, however many identities ask. Default 64.
    pub foreign_repair_frames_per_s: u64,
    /// Out-of-order frames buffered per topic before skipping ahead. Default 64.
    pub reorder_window: u64,
    /// Message ids remembered for duplicate suppression. Default 8192.
    pub dedup_cache: usize,
    /// Routes remembered. Default 4096.
    pub max_routes: usize,
    /// Hops a direct message may take. Default 12.
    pub hop_limit: u8,
    /// A learned route expires after this long (µs). Default 30 s.
    pub route_ttl_us: u64,
    /// Direct messages flooded to every neighbour (no route known) per second, and as a burst,
    /// over all origins: a flood multiplies one message by the neighbour count, and origins
    /// are free to mint. Default 64.
    pub max_floods_per_s: u64,
    /// How often the node wakes up for timeouts and probes (µs). Default 100 ms.
    pub tick_us: u64,
    /// A join without an answer is retried elsewhere after this long (µs). Default 500 ms.
    pub join_timeout_us: u64,
    /// A gap not filled by the parent after this long (µs) is asked for again. Default 150 ms.
    pub repair_delay_us: u64,
    /// A gap older than this (µs) is given up: the frames are skipped. Default 2 s.
    pub give_up_us: u64,
    /// Parent silence (µs) that counts as congestion once frames have flowed (or the root said
    /// they do): the fallback for a parent that answers probes but forwards nothing — or
    /// accepts joiners and starves them. At least 8 frame intervals of the measured stream, so
    /// a slow stream does not look silent. Default 1 s (3 s let starving Sybils cost honest
    /// nodes 3.4 % of frames in the simulator; 1 s, 1 %).
    pub parent_silence_us: u64,
    /// Parent RTT above this multiple of its best RTT counts as congestion. Default 4.
    pub rtt_congestion_factor: f64,
    /// Congestion must persist this long (µs) before re-attaching (hysteresis). Default 300 ms.
    pub congestion_hold_us: u64,
    /// After a re-attach, no other for this long (µs), so a node does not flap. Default 2 s.
    pub reattach_cooldown_us: u64,
    /// A parent left for congestion is avoided for this long (µs). Default 10 s.
    pub avoid_us: u64,
    /// Bytes queued towards one child beyond which new frames to it are dropped (newer wins).
    /// Default 1 MiB.
    pub max_child_queue_bytes: u64,
    /// How often parent and children are probed for RTT (µs). Default 300 ms.
    pub probe_interval_us: u64,
    /// Candidates of a redirect a joiner probes before choosing where to descend; 0 or 1 turns
    /// latency-aware placement off (the redirecting node's order is taken as is). Default 3:
    /// more finds nearer parents but lets a flash crowd pile into the nearest branches (deeper
    /// trees, slower attach — see the simulator figures in ARCHITECTURE.md).
    pub join_probes: usize,
    /// How long a joiner waits for those probes (µs); unanswered candidates rank last.
    /// Default 250 ms.
    pub join_probe_wait_us: u64,
    /// A full node admits a joiner whose baseline RTT to it is below this fraction of its
    /// farthest child's, and moves that child (with its subtree) under the joiner: nodes near
    /// the root end up near the top. 0 turns it off. Default 0.3 (larger factors move more
    /// subtrees for less gain and deepen the tree).
    pub preempt_factor: f64,
    /// At most one such swap per node per topic in this long (µs). Default 100 ms.
    pub preempt_interval_us: u64,
    /// A node trades places with a child whose RTT to the node's parent is below this fraction
    /// of its own, as the parent measures both: the tree sorts itself after a flash crowd
    /// filled it in arrival order. 0 turns it off. Default 0.8.
    pub swap_factor: f64,
    /// At most one trade per node per topic in this long (µs), and none this soon after
    /// attaching. Default 1 s.
    pub swap_interval_us: u64,
}

impl Default for OverlayConfig {
    fn default() -> Self {
        OverlayConfig {
            max_children: 4,
            upload_bytes_per_s: 100_000_000,
            max_topics: 8,
            max_children_per_network: 2,
            repair_cache: 128,
            repair_cache_bytes: 256 << 10,
            repair_frames_per_s: 1_024,
            foreign_repair_frames_per_s: 64,
            reorder_window: 64,
            dedup_cache: 8192,
            max_routes: 4096,
            hop_limit: 12,
            route_ttl_us: 30_000_000,
            max_floods_per_s: 64,
            tick_us: 100_000,
            join_timeout_us: 500_000,
            repair_delay_us: 150_000,
            give_up_us: 2_000_000,
            parent_silence_us: 1_000_000,
            rtt_congestion_factor: 4.0,
            congestion_hold_us: 300_000,
            reattach_cooldown_us: 2_000_000,
            avoid_us: 10_000_000,
            max_child_queue_bytes: 1 << 20,
            probe_interval_us: 300_000,
            join_probes: 3,
            join_probe_wait_us: 250_000,
            preempt_factor: 0.3,
            preempt_interval_us: 100_000,
            swap_factor: 0.8,
            swap_interval_us: 1_000_000,
        }
    }
}
