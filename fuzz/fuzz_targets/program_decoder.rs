//! Program definitions and definition-exchange messages come from peers: the decoders must
//! never panic or allocate beyond what the input holds, and a definition that decodes must
//! encode back to the same bytes (the encoding is what the address hashes).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use starling_engine::program::ProgramDefinition;
use starling_engine::program::exchange::Exchange;

fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);
    if let Ok(d) = ProgramDefinition::decode(&bytes) {
        assert_eq!(d.encode(), bytes, "one encoding per definition");
        let _ = ProgramDefinition::decode_for(&d.address(), &bytes).expect("its own address");
    }
    if let Ok(Exchange::Found(address, definition)) = Exchange::decode(&bytes) {
        let _ = ProgramDefinition::decode_for(&address, &definition);
    }
});
