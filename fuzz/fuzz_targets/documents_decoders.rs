//! What the documents protocol takes from peers: its messages, reconciliation turns (decoded,
//! then answered against a small local set), the index values an encrypted document
//! publishes, and the `--where` language. None may panic or
//! allocate beyond what the input holds; a message that decodes encodes back to one that
//! decodes to the same.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use starling_engine::documents::json::parse_filter;
use starling_engine::documents::keys::{decode_published, encode_published};
use starling_engine::documents::replica::wire::Wire;
use starling_engine::program::ProgramAddress;
use starling_engine::reconcile::{self, ITEM_LEN, Item};

fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);
    if let Ok(w) = Wire::decode(bytes.clone()) {
        let again = w.encode(&ProgramAddress([1; 32]));
        let (_, rest) = Wire::program_of(&again.slice(2..)).expect("its own program");
        assert_eq!(Wire::decode(rest).expect("decodes again"), w);
    }
    if let Ok(m) = reconcile::Message::decode(data) {
        let items: Vec<Item> = (0u8..40).map(|i| [i; ITEM_LEN]).collect();
        let _ = reconcile::respond(&items, &m);
    }
    if let Ok(pairs) = decode_published(data) {
        let again = encode_published(&pairs);
        let back = decode_published(&again).expect("decodes again");
        // (NaN != NaN: compare encodings.)
        assert_eq!(encode_published(&back), again);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_filter(text);
    }
});
