//! The entry decoder (format v2) and verifier must never panic, whatever the bytes: the whole
//! entry (`header ‖ payload`), a split header and payload, and the proof and signature checks.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use starling_net::entry::{Entry, EntryVerifier};

fuzz_target!(|data: &[u8]| {
    let mut verifier = EntryVerifier::new(4);
    if let Ok(e) = Entry::from_bytes(Bytes::copy_from_slice(data)) {
        let _ = verifier.verify_many(&[e.clone(), e.clone()]);
        let _ = e.payload();
        let _ = e.next().count();
        let _ = e.wire_parts();
    }
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let (header, payload) = data.split_at(split);
    if let Ok(e) = Entry::decode(
        Bytes::copy_from_slice(header),
        Bytes::copy_from_slice(payload),
    ) {
        let _ = verifier.verify(&e);
        let _ = e.payload();
    }
});
