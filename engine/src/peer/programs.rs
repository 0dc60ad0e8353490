//! Programs on a peer: definitions kept and fetched by address, document stores opened by
//! definition or by address.

use std::collections::HashMap;
use std::time::Duration;

use starling_store::Table;

use super::Peer;
use crate::documents::json::{Json, json_index};
use crate::documents::{
    AccessRule, Codec, Documents, DocumentsOptions, DocumentsParams, IndexSpec, Postcard, Replica,
    ReplicaOptions, Role,
};
use crate::program::exchange;
use crate::program::{ProgramAddress, ProgramDefinition, ProgramError};
use crate::stream::PeerError;
use crate::trust::{Trust, TrustParams};

/// Re-checks `replica`'s entries whenever `trust` changes, so a revocation learnt late removes
/// the revoked key's entries from its clock on, here as everywhere. (The task holds the
/// replica for as long as the peer keeps the graph open.)
fn follow_revocations<T: Send + 'static, C: Codec<T> + Send + 'static>(
    trust: &Trust,
    replica: &Replica<T, C>,
) {
    let mut updates = trust.narrowed();
    // Not a handle: the task ends with the replica, it does not keep it open.
    let replica = replica.watch();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                changed = updates.changed() => if changed.is_err() { return },
                () = replica.closed() => return,
            }
            match replica.with_documents(|d| d.recheck_access()) {
                None => return,
                Some(Ok(0)) => {}
                Some(Ok(n)) => {
                    tracing::info!(removed = n, "documents: entries a revocation refuses");
                }
                Some(Err(e)) => tracing::warn!("documents: re-checking writers: {e}"),
            }
        }
    });
}

impl Peer {
    /// Keeps `definition` so that any peer can fetch it by its address (in memory, and in
    /// the store when this peer has one, so it opens again after a restart); the address.
    pub fn define(&self, definition: ProgramDefinition) -> ProgramAddress {
        let encoded = definition.encode();
        let address = self.inner.definitions.insert(definition);
        let stored = self.store().and_then(|store| {
            let mut batch = store.batch();
            batch.put(Table::Programs, &address.0, encoded);
            Ok(batch.commit()?)
        });
        if let Err(e) = stored {
            tracing::warn!(%address, "program definition not stored: {e}");
        }
        address
    }

    /// The definition at `address`: this peer's own (in memory or stored), or fetched from
    /// its neighbours — the first answer that hashes to the address — asked again every
    /// second until `timeout`.
    pub async fn fetch_definition(
        &self,
        address: ProgramAddress,
        timeout: Duration,
    ) -> Result<ProgramDefinition, PeerError> {
        let defs = &self.inner.definitions;
        if let Some(d) = defs.get(&address) {
            return Ok(d);
        }
        if let Some(bytes) = self.store()?.row(Table::Programs, &address.0)? {
            let d = ProgramDefinition::decode_for(&address, &bytes)?;
            defs.insert(d.clone());
            return Ok(d);
        }
        let mut answer = defs.wait(address).ok_or(PeerError::TooManyFetches)?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let neighbours = self.inner.node.neighbours().await;
            exchange::ask(&self.inner.node, &neighbours, address);
            let next = (tokio::time::Instant::now() + Duration::from_secs(1)).min(deadline);
            match tokio::time::timeout_at(next, &mut answer).await {
                Ok(Ok(d)) => {
                    self.define(d.clone());
                    return Ok(d);
                }
                Ok(Err(_)) => return Err(PeerError::Closed),
                Err(_) if tokio::time::Instant::now() >= deadline => {
                    return Err(PeerError::DefinitionNotFound(address));
                }
                Err(_) => {}
            }
        }
    }

    /// Opens a document store: `program`'s documents in this peer's store, writing as this
    /// peer, replicated with the other peers that have it open (see
    /// [`crate::documents::replica`]). One replica per program per peer.
    pub fn open_documents<T, C>(
        &self,
        program: ProgramAddress,
        codec: C,
        index: IndexSpec<T>,
        options: DocumentsOptions,
        replica: ReplicaOptions,
    ) -> Result<Replica<T, C>, PeerError>
    where
        T: Send + 'static,
        C: Codec<T> + Send + 'static,
    {
        let inbox = self
            .inner
            .documents
            .register(program)
            .ok_or(PeerError::AlreadyOpen(program))?;
        let docs = Documents::open(
            program,
            self.store()?,
            self.inner.key.clone(),
            codec,
            index,
            options,
        )?;
        Ok(Replica::start(
            docs,
            self.inner.node.clone(),
            inbox,
            replica,
        ))
    }

    /// Opens a document store by address: its definition fetched (and checked against the
    /// address) unless this peer has it, its parameters (immutability, writers) applied.
    pub async fn open_documents_at<T, C>(
        &self,
        address: ProgramAddress,
        codec: C,
        index: IndexSpec<T>,
        replica: ReplicaOptions,
        timeout: Duration,
    ) -> Result<(Replica<T, C>, DocumentsParams), PeerError>
    where
        T: Send + 'static,
        C: Codec<T> + Send + 'static,
    {
        let definition = self.fetch_definition(address, timeout).await?;
        let params = DocumentsParams::of(&definition)?;
        let (options, trust) = self.options_of(&definition, &params, timeout).await?;
        let replica = self.open_documents(address, codec, index, options, replica)?;
        if let Some(trust) = trust {
            follow_revocations(&trust, &replica);
        }
        Ok((replica, params))
    }

    /// The options a store's definition asks for; when its writers are a trust graph's,
    /// that graph opened here (fetched within `timeout`), asked for keys trusted with the
    /// store's name as the scope.
    async fn options_of(
        &self,
        definition: &ProgramDefinition,
        params: &DocumentsParams,
        timeout: Duration,
    ) -> Result<(DocumentsOptions, Option<Trust>), PeerError> {
        let trust = match params.trust_graph()? {
            Some(graph) => Some(self.open_trust(graph, timeout).await?),
            None => None,
        };
        let hook = trust.as_ref().map(|t| t.hook_for(definition.name()));
        let options = params.options_with(hook)?;
        Ok((options, trust))
    }

    /// Opens a JSON document store by address (see [`crate::documents::json`]); its id field
    /// is in the parameters returned.
    pub async fn open_json(
        &self,
        address: ProgramAddress,
        replica: ReplicaOptions,
        timeout: Duration,
    ) -> Result<(Replica<serde_json::Value, Json>, DocumentsParams), PeerError> {
        let definition = self.fetch_definition(address, timeout).await?;
        let params = DocumentsParams::of(&definition)?;
        if params.json_id_field.is_none() {
            return Err(PeerError::Definition(ProgramError::BadParams(
                "not a JSON store (no id field)".into(),
            )));
        }
        let (options, trust) = self.options_of(&definition, &params, timeout).await?;
        let replica = self.open_documents(address, Json, json_index(), options, replica)?;
        if let Some(trust) = trust {
            follow_revocations(&trust, &replica);
        }
        Ok((replica, params))
    }

    /// Defines a trust graph rooted at this peer's key; returns its address.
    pub fn create_trust(&self, name: &str) -> Result<ProgramAddress, PeerError> {
        let definition = TrustParams::new(&self.public_key()).definition(name)?;
        Ok(self.define(definition))
    }

    /// Opens the trust graph at `address` (its definition from here or fetched within
    /// `timeout`) as a replicator of its statements; a graph already open is shared.
    pub async fn open_trust(
        &self,
        address: ProgramAddress,
        timeout: Duration,
    ) -> Result<Trust, PeerError> {
        if let Some(t) = self.lock_trusts().get(&address) {
            return Ok(t.clone());
        }
        let definition = self.fetch_definition(address, timeout).await?;
        let root = TrustParams::of(&definition)?.root()?;
        let graph_cell = crate::trust::program::SharedGraph::new(root);
        let replica = self.open_documents(
            address,
            Postcard,
            IndexSpec::new(),
            DocumentsOptions {
                immutable: true,
                access: AccessRule::Custom(graph_cell.statement_rule()),
                replicas: None,
            },
            ReplicaOptions {
                role: Role::Replicator,
                // Graphs are small: reconciling often costs little and spreads revocations.
                reconcile_every: Duration::from_secs(1),
                ..ReplicaOptions::default()
            },
        )?;
        let trust = Trust::start(address, root, self.public_key(), replica, graph_cell)?;
        self.lock_trusts().insert(address, trust.clone());
        Ok(trust)
    }

    fn lock_trusts(&self) -> std::sync::MutexGuard<'_, HashMap<ProgramAddress, Trust>> {
        self.inner
            .trusts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Opens a live stream by its program address (the stream's definition names its owner
    /// and name; fetched and checked like any program's): ours to publish, or someone's to
    /// watch.
    pub async fn open_stream_at(
        &self,
        program: ProgramAddress,
        timeout: Duration,
    ) -> Result<crate::peer::LiveStream, PeerError> {
        let definition = self.fetch_definition(program, timeout).await?;
        let address = crate::stream::StreamAddress::from_definition(&definition)?;
        self.open_stream(&address.to_string())
    }
}
