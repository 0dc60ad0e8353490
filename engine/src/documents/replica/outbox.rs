//! One remote's outbox: a task that sends a replica's messages to one peer over its app link,
//! in order — control messages first, then own writes, then entries served from the store
//! (reconciliation, requests; all acknowledged) — packing entries [`ENTRIES_BYTES`] to a message
//! and waiting on the link's flow control, so a slow peer slows only its own outbox.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use starling_net::PeerId;
use starling_net::entry::{Entry, EntryHash};
use starling_net::overlay::{AppLink, OverlayNode};
use tokio::sync::{Notify, mpsc};

use super::wire::{ENTRIES_BYTES, Wire};
use super::{Counters, MAX_BACKLOG, Shared};

/// Control messages queued per remote before new ones are dropped.
const CONTROL_QUEUE: usize = 256;

/// The sending half of one remote (see the module docs). Stops its task on drop.
#[derive(Debug)]
pub(super) struct Outbox {
    control: mpsc::Sender<Bytes>,
    live: mpsc::Sender<Entry>,
    backlog: Arc<Mutex<Backlog>>,
    wake: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

/// Entries waiting to be read from the store and sent, each once.
#[derive(Debug, Default)]
struct Backlog {
    queue: VecDeque<EntryHash>,
    queued: HashSet<EntryHash>,
}

impl Drop for Outbox {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Outbox {
    pub(super) fn start<T, C>(
        peer: PeerId,
        node: OverlayNode,
        shared: Arc<Shared<T, C>>,
        push_queue: usize,
    ) -> Outbox
    where
        T: Send + 'static,
        C: crate::documents::Codec<T> + Send + 'static,
    {
        let (control, control_rx) = mpsc::channel(CONTROL_QUEUE);
        let (live, live_rx) = mpsc::channel(push_queue.max(1));
        let backlog: Arc<Mutex<Backlog>> = Arc::default();
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(
            Sender {
                peer,
                node,
                shared,
                control_rx,
                live_rx,
                backlog: backlog.clone(),
                wake: wake.clone(),
                link: None,
            }
            .run(),
        );
        Outbox {
            control,
            live,
            backlog,
            wake,
            task,
        }
    }

    /// Queues a control message; false if the queue is full (dropped).
    pub(super) fn control(&self, message: Bytes) -> bool {
        self.control.try_send(message).is_ok()
    }

    /// Queues an own write; false if the queue is full (dropped).
    pub(super) fn push(&self, entry: Entry) -> bool {
        self.live.try_send(entry).is_ok()
    }

    /// Entries queued to be served.
    pub(super) fn backlog(&self) -> usize {
        self.backlog
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .queue
            .len()
    }

    /// Queues stored entries to send (once: one already queued is not queued again, as
    /// overlapping reconciliations and requests would); how many fit under [`MAX_BACKLOG`].
    pub(super) fn serve(&self, hashes: impl IntoIterator<Item = EntryHash>) -> usize {
        let mut backlog = self.backlog.lock().unwrap_or_else(PoisonError::into_inner);
        let before = backlog.queue.len();
        for h in hashes {
            if backlog.queue.len() >= MAX_BACKLOG {
                break;
            }
            if backlog.queued.insert(h) {
                backlog.queue.push_back(h);
            }
        }
        let added = backlog.queue.len() - before;
        drop(backlog);
        self.wake.notify_one();
        added
    }
}

struct Sender<T, C> {
    peer: PeerId,
    node: OverlayNode,
    shared: Arc<Shared<T, C>>,
    control_rx: mpsc::Receiver<Bytes>,
    live_rx: mpsc::Receiver<Entry>,
    backlog: Arc<Mutex<Backlog>>,
    wake: Arc<Notify>,
    link: Option<AppLink>,
}

impl<T, C> Sender<T, C>
where
    T: Send + 'static,
    C: crate::documents::Codec<T> + Send + 'static,
{
    async fn run(mut self) {
        loop {
            let mut controls = Vec::new();
            let mut live = Vec::new();
            tokio::select! {
                biased;
                Some(m) = self.control_rx.recv() => controls.push(m),
                Some(e) = self.live_rx.recv() => live.push(e),
                _ = self.wake.notified() => {}
            }
            while let Ok(m) = self.control_rx.try_recv() {
                controls.push(m);
            }
            let mut bytes: usize = live.iter().map(Entry::size).sum();
            while bytes < ENTRIES_BYTES {
                let Ok(e) = self.live_rx.try_recv() else {
                    break;
                };
                bytes += e.size();
                live.push(e);
            }
            let served = self.take_backlog();
            let Some(link) = self.link().await else {
                Counters::add(&self.shared.counters.push_dropped, live.len() as u64);
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            };
            let program = self.shared.program;
            let mut messages = controls;
            if !live.is_empty() {
                messages.push(
                    Wire::Entries {
                        ack: true,
                        entries: live,
                    }
                    .encode(&program),
                );
            }
            if !served.is_empty() {
                Counters::add(&self.shared.counters.served, served.len() as u64);
                Counters::add(
                    &self.shared.counters.served_bytes,
                    served.iter().map(|e| e.size() as u64).sum(),
                );
                messages.push(
                    Wire::Entries {
                        ack: true,
                        entries: served,
                    }
                    .encode(&program),
                );
            }
            for m in messages {
                if let Err(e) = link.send(m).await {
                    tracing::debug!(peer = %self.peer, "documents link: {e}");
                    self.link = None;
                    break;
                }
            }
            if !self
                .backlog
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .queue
                .is_empty()
            {
                self.wake.notify_one();
            }
        }
    }

    /// Up to [`ENTRIES_BYTES`] of the backlog, read from the store.
    fn take_backlog(&mut self) -> Vec<Entry> {
        let mut out = Vec::new();
        let mut bytes = 0;
        while bytes < ENTRIES_BYTES {
            let next = {
                let mut backlog = self.backlog.lock().unwrap_or_else(PoisonError::into_inner);
                let next = backlog.queue.pop_front();
                if let Some(h) = &next {
                    backlog.queued.remove(h);
                }
                next
            };
            let Some(hash) = next else { break };
            match self.shared.docs().entry(&hash) {
                Ok(Some(e)) => {
                    bytes += e.size();
                    out.push(e);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!("documents: reading {hash} to send: {e}"),
            }
        }
        out
    }

    /// The link to the peer, dialed again when it closed.
    async fn link(&mut self) -> Option<AppLink> {
        if let Some(l) = &self.link
            && !l.is_closed()
        {
            return Some(l.clone());
        }
        match self.node.link(self.peer).await {
            Ok(l) => {
                self.link = Some(l.clone());
                Some(l)
            }
            Err(e) => {
                tracing::debug!(peer = %self.peer, "documents: no link: {e}");
                None
            }
        }
    }
}
