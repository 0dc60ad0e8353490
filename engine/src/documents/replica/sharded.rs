//! The handle's part for a sharded store: its standing, waiting for the ring to be known,
//! leaving, and searches across shards (see `driver/sharded.rs` for the driver's part).

use std::sync::PoisonError;
use std::time::Duration;

use starling_net::PeerId;
use tokio::sync::oneshot;

use super::{AskKind, Cmd, Replica, SEARCH_ROUNDS, SearchAnswer, ShardStatus};
use crate::documents::codec::{Codec, DocId};
use crate::documents::collection::{Candidate, DocumentError, Reader};
use crate::documents::query::Query;
use crate::shard::{Span, point_of};

impl<T, C> Replica<T, C>
where
    T: Send + 'static,
    C: Codec<T> + Send + 'static,
{
    /// Whether the store is sharded (each document kept by some replicators).
    pub fn is_sharded(&self) -> bool {
        self.shared.sharded
    }

    /// A sharded store's standing here (`None`: not sharded, or not started yet).
    pub fn shard_status(&self) -> Option<ShardStatus> {
        self.shared
            .shard
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits until this replica of a sharded store is ready (holds the data of its ranges).
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.shard_status().is_some_and(|s| s.ready) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every point of a sharded store's ring has `min` ready holders, as this
    /// replica knows them.
    pub async fn wait_for_coverage(&self, timeout: Duration) -> bool {
        self.wait_status(|s| s.coverage >= 1.0 - 1e-9, timeout)
            .await
    }

    /// Waits until every point of a sharded store's ring has a ready holder this replica
    /// knows of, and every replicator it heard of has announced (writes and searches reach
    /// the whole ring).
    pub async fn wait_reachable(&self, timeout: Duration) -> bool {
        self.wait_status(|s| s.reachable >= 1.0 - 1e-9 && s.unannounced == 0, timeout)
            .await
    }

    async fn wait_status(&self, done: impl Fn(&ShardStatus) -> bool, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.shard_status().is_some_and(|s| done(&s)) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Leaves a sharded store on purpose: this replicator announces it is leaving (it stops
    /// being a target holder, so writes and new holders go elsewhere, but stays a settled
    /// holder the others fetch from), and deletes each entry once all its target holders
    /// confirmed holding it. True once it holds nothing (then it can stop); false at
    /// `timeout`, still holding some.
    pub async fn leave(&self, timeout: Duration) -> Result<bool, DocumentError> {
        self.cmds
            .send(Cmd::Leave)
            .map_err(|_| DocumentError::Closed)?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let held = self.shared.docs().held_first(Span::ALL, 1)?;
            if held.is_empty() {
                return Ok(true);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The replicators that keep `id` in a sharded store (settled holders first).
    pub(super) async fn keepers_of(&self, id: &DocId) -> Result<Vec<PeerId>, DocumentError> {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send(Cmd::Holders(point_of(&id.group()), tx))
            .map_err(|_| DocumentError::Closed)?;
        rx.await.map_err(|_| DocumentError::Closed)
    }

    /// Searches a sharded store: asks a set of replicators that together cover the ring (this
    /// one first when it holds a part), each for its part; verifies every entry (signature,
    /// program, access rule, that it lies in the part asked), merges, sorts and limits — exact
    /// across shards, since each part's answer is sorted and limited the same way. Parts that
    /// did not answer within `timeout`, or that nobody holds, are reported, not hidden.
    pub async fn search(
        &self,
        query: &Query,
        timeout: Duration,
    ) -> Result<SearchAnswer<T>, DocumentError> {
        let deadline = tokio::time::Instant::now() + timeout;
        // Just opened: hear from the replicators first (a part nobody is known to hold would
        // be reported missing), for at most half the time.
        self.wait_reachable(timeout / 2).await;
        let mut found = Vec::new();
        let mut todo = vec![Span::ALL];
        let mut exclude: Vec<PeerId> = Vec::new();
        let mut unanswered = Vec::new();
        // A part whose holder does not answer (it died and is not known dead yet) is asked of
        // another holder: three rounds, each with a share of the time left.
        for round in 0..SEARCH_ROUNDS {
            let (tx, rx) = oneshot::channel();
            self.cmds
                .send(Cmd::Cover {
                    within: std::mem::take(&mut todo),
                    exclude: exclude.clone(),
                    answer: tx,
                })
                .map_err(|_| DocumentError::Closed)?;
            let (parts, nobody) = rx.await.map_err(|_| DocumentError::Closed)?;
            unanswered.extend(nobody);
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let round_deadline =
                tokio::time::Instant::now() + left / (SEARCH_ROUNDS - round) as u32;
            let mut asks = tokio::task::JoinSet::new();
            for (peer, spans) in parts {
                if peer == self.shared.me {
                    let mine = self.shared.docs().query_in(query, &spans, Reader::Me)?;
                    found.extend(mine.into_iter().filter_map(|(id, head, c)| match c {
                        Candidate::Doc(doc) => Some((id, head, doc)),
                        Candidate::Published(_) => None,
                    }));
                    continue;
                }
                let (this, query) = (self.clone(), query.clone());
                asks.spawn(async move {
                    let left =
                        round_deadline.saturating_duration_since(tokio::time::Instant::now());
                    let answer = this
                        .ask(AskKind::Query(query, spans.clone()), Some(peer), left)
                        .await;
                    (peer, spans, answer)
                });
            }
            while let Some(done) = asks.join_next().await {
                let Ok((peer, spans, answer)) = done else {
                    continue;
                };
                let entries = match answer {
                    Ok(entries) => entries,
                    Err(e) => {
                        tracing::debug!(%peer, "documents: a shard did not answer: {e}");
                        exclude.push(peer);
                        todo.extend(spans);
                        continue;
                    }
                };
                let mut docs = self.shared.docs();
                for e in &entries {
                    let (id, doc) = match docs.check_answer(e) {
                        Ok(found) => found,
                        // Encrypted to others: not an answer this key can use.
                        Err(DocumentError::Unreadable { .. }) => continue,
                        Err(e) => return Err(e),
                    };
                    if !spans.iter().any(|s| s.contains(point_of(&id.group()))) {
                        return Err(DocumentError::OutsideSpans);
                    }
                    found.push((id, e.hash(), doc));
                }
            }
            if todo.is_empty() {
                break;
            }
            todo.sort();
            // Views of the ring converge within a heartbeat: give them a moment.
            let pause = Duration::from_millis(200)
                .min(deadline.saturating_duration_since(tokio::time::Instant::now()) / 4);
            tokio::time::sleep(pause).await;
        }
        unanswered.extend(todo);
        let docs = self.shared.docs();
        let documents = docs
            .select(query, found)
            .into_iter()
            .map(|(id, _, doc)| (id, doc))
            .collect();
        unanswered.sort();
        let missing = unanswered.iter().map(Span::fraction).sum();
        Ok(SearchAnswer {
            documents,
            unanswered,
            missing,
        })
    }
}
