//! A document store as a program: its definition (kind [`DOCUMENTS_KIND`], a name, and
//! [`DocumentsParams`] — immutability, who may write, the id field of a JSON store) hashes to
//! the address every peer opens it by.

use serde::{Deserialize, Serialize};
use starling_net::identity::PublicKey;

use super::access::{AccessRule, TrustHook};
use super::collection::DocumentsOptions;
use crate::program::{ProgramAddress, ProgramDefinition, ProgramError};

/// The kind of a document store's definition.
pub const DOCUMENTS_KIND: &str = "documents/v1";

/// Who may write a store, as its definition says.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Writers {
    /// Anyone.
    #[default]
    Anyone,
    /// Only these keys (libp2p protobuf encoding).
    Keys(Vec<Vec<u8>>),
    /// Keys the trust graph at this address trusts (its root and delegated keys), at each
    /// entry's clock.
    Trusted(Vec<u8>),
}

/// How many replicators keep each document of a sharded store. Placement uses `min`
/// ([`crate::shard`]); `max` bounds what a writer may ask for (not used yet: every entry is
/// kept by `min`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replicas {
    /// Replicas every document keeps through churn.
    pub min: u8,
    /// At most this many.
    pub max: u8,
}

/// A document store's parameters: what its definition holds besides kind and name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentsParams {
    /// The first version of a document wins.
    pub immutable: bool,
    /// Who may write.
    pub writers: Writers,
    /// A JSON store: the field that holds each document's id (`None`: a typed store whose
    /// application gives ids).
    pub json_id_field: Option<String>,
    /// Sharded: each document kept by `replicas.min` replicators chosen by the ring (`None`:
    /// every replicator keeps everything).
    pub replicas: Option<Replicas>,
}

impl DocumentsParams {
    /// The definition of a store `name` with these parameters.
    pub fn definition(&self, name: &str) -> Result<ProgramDefinition, ProgramError> {
        ProgramDefinition::with_params(DOCUMENTS_KIND, name, self)
    }

    /// The parameters of a document store's definition.
    pub fn of(definition: &ProgramDefinition) -> Result<DocumentsParams, ProgramError> {
        definition.params_as(DOCUMENTS_KIND)
    }

    /// The options a store opened with these parameters runs with. A store whose writers
    /// are a trust graph's needs that graph: [`DocumentsParams::options_with`].
    pub fn options(&self) -> Result<DocumentsOptions, ProgramError> {
        self.options_with(None)
    }

    /// The trust graph a store's writers are checked against, if its definition names one.
    pub fn trust_graph(&self) -> Result<Option<ProgramAddress>, ProgramError> {
        match &self.writers {
            Writers::Trusted(address) => Ok(Some(ProgramAddress(
                address
                    .as_slice()
                    .try_into()
                    .map_err(|_| ProgramError::BadParams("trust graph address".into()))?,
            ))),
            _ => Ok(None),
        }
    }

    /// [`DocumentsParams::options`], with `trust` answering for the trust graph the
    /// definition names.
    pub fn options_with(&self, trust: Option<TrustHook>) -> Result<DocumentsOptions, ProgramError> {
        let access = match &self.writers {
            Writers::Trusted(_) => AccessRule::Trusted(trust.ok_or_else(|| {
                ProgramError::BadParams("writers are a trust graph's: open it first".into())
            })?),
            Writers::Anyone => AccessRule::Anyone,
            Writers::Keys(keys) => AccessRule::Writers(
                keys.iter()
                    .map(|k| {
                        PublicKey::decode_protobuf(k)
                            .map_err(|e| ProgramError::BadParams(format!("writer key: {e}")))
                    })
                    .collect::<Result<_, _>>()?,
            ),
        };
        Ok(DocumentsOptions {
            immutable: self.immutable,
            access,
            replicas: self.replicas.map(|r| r.min.max(1)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use starling_net::{KeyType, Keypair};

    #[test]
    fn parameters_round_trip_through_the_definition_and_name_the_same_address() {
        let key = Keypair::generate(KeyType::Ed25519);
        let params = DocumentsParams {
            immutable: true,
            writers: Writers::Keys(vec![key.public().encode_protobuf()]),
            json_id_field: Some("id".into()),
            replicas: Some(Replicas { min: 2, max: 3 }),
        };
        let def = params.definition("posts").unwrap();
        assert_eq!(DocumentsParams::of(&def).unwrap(), params);
        assert_eq!(def.address(), params.definition("posts").unwrap().address());
        assert_ne!(
            def.address(),
            DocumentsParams::default()
                .definition("posts")
                .unwrap()
                .address()
        );
        let options = params.options().unwrap();
        assert!(options.immutable && options.replicas == Some(2));
        assert!(matches!(options.access, AccessRule::Writers(k) if k == vec![*key.public()]));
        let other = ProgramDefinition::new("trust/v1", "x", Bytes::new()).unwrap();
        assert!(matches!(
            DocumentsParams::of(&other),
            Err(ProgramError::WrongKind { .. })
        ));
        let junk =
            ProgramDefinition::new(DOCUMENTS_KIND, "x", Bytes::from_static(&[9, 9, 9])).unwrap();
        assert!(matches!(
            DocumentsParams::of(&junk),
            Err(ProgramError::BadParams(_))
        ));
    }
}
