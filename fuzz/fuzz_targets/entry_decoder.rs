//! The entry decoder must never panic, whatever the header and payload bytes.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use starling_engine::log::Entry;

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let (header, payload) = data.split_at(split);
    if let Ok(e) = Entry::decode(Bytes::copy_from_slice(payload), Bytes::copy_from_slice(header)) {
        let _ = e.verify();
        let _ = e.payload();
    }
});
