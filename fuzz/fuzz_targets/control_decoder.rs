//! The overlay's control decoder must never panic, and must learn nothing from a message it
//! refuses: whatever the bytes, a decoded message re-encodes to a body that decodes the same.
#![no_main]

use std::collections::HashMap;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use starling_net::overlay::control::{self, Control, MAX_PEERS};
use starling_net::wire::Frame;

fuzz_target!(|data: &[u8]| {
    let mut learned = Vec::new();
    let decoded = control::decode(Frame::Overlay(Bytes::copy_from_slice(data)), &mut learned);
    assert!(learned.len() <= MAX_PEERS + 2);
    let Ok(Control::Message(message)) = decoded else {
        if decoded.is_err() {
            assert!(learned.is_empty());
        }
        return;
    };
    let book: HashMap<_, _> = learned.iter().copied().collect();
    let again = control::encode(&message, |p| book.get(p).copied());
    let mut relearned = Vec::new();
    match control::decode(again, &mut relearned) {
        Ok(Control::Message(back)) => assert_eq!(format!("{back:?}"), format!("{message:?}")),
        other => panic!("re-encoded message did not decode: {other:?}"),
    }
});
