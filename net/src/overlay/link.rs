//! What a node knows about each neighbour link, and the cost derived from it.

/// Measurements of one link, smoothed as TCP/QUIC smooth RTT (RFC 6298 gains).
#[derive(Clone, Debug, Default)]
pub struct LinkMetrics {
    /// Smoothed RTT (µs); 0 until measured.
    pub srtt_us: u64,
    /// RTT variation (µs).
    pub rttvar_us: u64,
    /// Smallest RTT seen (µs): the uncongested baseline.
    pub min_rtt_us: u64,
    /// The latest RTT sample (µs): what a probe just found, queueing included.
    pub last_rtt_us: u64,
    /// Bytes queued towards the peer (from the transport's backpressure).
    pub queued_bytes: u64,
    /// Delivery rate towards the peer (bytes/s), as the transport reports it.
    pub delivery_rate: f64,
    /// Packets lost, as the transport reports it (cumulative).
    pub lost: u64,
    /// When the link was last measured (µs).
    pub measured_at: u64,
    /// When the oldest unanswered probe was sent (µs): an answer that is late is itself a
    /// measurement — the RTT is at least this old.
    pub probe_outstanding_since: Option<u64>,
    /// Probes sent and not answered: (nonce, sent at µs); nonce 0 marks a free slot.
    probes: [(u64, u64); MAX_PROBES],
}

/// Unanswered probes remembered per link (a fifth forgets the oldest).
const MAX_PROBES: usize = 4;

impl LinkMetrics {
    /// Remembers a probe sent at `now` with `nonce` (non-zero), forgetting the oldest if all
    /// slots are taken.
    pub(super) fn note_probe(&mut self, nonce: u64, now: u64) {
        let slot = self
            .probes
            .iter()
            .position(|(n, _)| *n == 0)
            .unwrap_or_else(|| {
                let oldest = self.probes.iter().map(|(_, at)| *at).min().unwrap_or(0);
                self.probes
                    .iter()
                    .position(|(_, at)| *at == oldest)
                    .unwrap_or(0)
            });
        self.probes[slot] = (nonce, now);
    }

    /// When the probe with `nonce` was sent, if it is one of ours and unanswered (it is
    /// answered now: a second echo of the same nonce is not taken).
    pub(super) fn take_probe(&mut self, nonce: u64) -> Option<u64> {
        if nonce == 0 {
            return None;
        }
        let slot = self.probes.iter().position(|(n, _)| *n == nonce)?;
        let (_, sent_at) = std::mem::take(&mut self.probes[slot]);
        Some(sent_at)
    }

    /// Folds in one RTT sample.
    pub fn on_rtt(&mut self, sample_us: u64, now: u64) {
        let sample = sample_us.max(1);
        self.last_rtt_us = sample;
        if self.srtt_us == 0 {
            self.srtt_us = sample;
            self.rttvar_us = sample / 2;
            self.min_rtt_us = sample;
        } else {
            // In u128: samples come from outside (a transport's figure, a probe's age) and any
            // u64 must fold in without overflowing.
            let diff = u128::from(self.srtt_us.abs_diff(sample));
            let (rttvar, srtt) = (u128::from(self.rttvar_us), u128::from(self.srtt_us));
            self.rttvar_us = ((3 * rttvar + diff) / 4) as u64;
            self.srtt_us = ((7 * srtt + u128::from(sample)) / 8) as u64;
            self.min_rtt_us = self.min_rtt_us.min(sample);
        }
        self.measured_at = now;
    }

    /// The cost of sending over this link (µs-like units): latency plus a penalty for queueing
    /// and variance, so a loaded link loses to a slightly longer idle one.
    pub fn cost(&self) -> u64 {
        let base = if self.srtt_us == 0 {
            50_000
        } else {
            self.srtt_us
        };
        let queue_penalty = if self.delivery_rate > 0.0 {
            (self.queued_bytes as f64 / self.delivery_rate * 1e6) as u64
        } else {
            self.queued_bytes / 10
        };
        base.saturating_add(self.rttvar_us)
            .saturating_add(queue_penalty)
    }

    /// RTT as known now: the smoothed RTT, or the age of an unanswered probe if that is larger.
    pub fn effective_rtt(&self, now: u64) -> u64 {
        let waiting = self
            .probe_outstanding_since
            .map_or(0, |t| now.saturating_sub(t));
        self.srtt_us.max(waiting)
    }

    /// RTT inflated past `factor` × the baseline, after excusing `own_lag_us` (how late our
    /// own event loop runs) twice: a node whose loop runs late sees every RTT grow by its lag
    /// and its peer's, and a peer running no later than itself is no worse a parent.
    pub fn inflated(&self, factor: f64, now: u64, own_lag_us: u64) -> bool {
        self.min_rtt_us > 0
            && self.effective_rtt(now).saturating_sub(2 * own_lag_us) as f64
                > factor * self.min_rtt_us.max(1_000) as f64 + 20_000.0
    }
}
