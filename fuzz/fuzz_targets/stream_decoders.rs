//! Stream records and catch-up messages come from the network: their decoders must never panic
//! or allocate beyond what the input holds, whatever the bytes.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use starling_engine::stream::record::{CatchUp, Record};

fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);
    if let Ok(record) = Record::parse(&bytes, &starling_net::entry::LogId([0; 32])) {
        let _ = record.entry().verify();
    }
    let _ = CatchUp::decode(&bytes);
});
