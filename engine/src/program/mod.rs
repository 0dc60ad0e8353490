//! Programs: a definition (kind, name, parameters) whose encoding is hashed into its
//! **address**, so any peer that opens the same definition opens the same program, and an
//! address names exactly one definition (checked by hashing what a peer sends for it).
//!
//! - [`ProgramDefinition`]: the canonical encoding and its typed decoding errors.
//! - [`ProgramAddress`]: BLAKE3 of the encoding, printed as CIDv1 like entry hashes.
//! - `exchange`: fetching a definition by address from neighbours ([`Protocol::PROGRAMS`]),
//!   taken only when asked for and when it hashes to the address.
//!
//! Built so far (issue 14): definitions, addresses, and fetching by address
//! (`Peer::define`, `Peer::fetch_definition`). Opening a program of a kind (documents, live
//! streams as programs) comes next.
//!
//! [`Protocol::PROGRAMS`]: crate::router::Protocol::PROGRAMS

mod definition;
pub mod exchange;

pub use definition::{
    MAX_KIND_LEN, MAX_NAME_LEN, MAX_PARAMS_LEN, ProgramAddress, ProgramDefinition, ProgramError,
};
